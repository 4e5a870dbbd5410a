/* C core of trackside.plan: ACO_MV archive upkeep, ranking and sampling, and the
 * training-plan objective.  Pure C99, no allocation except in plan_eval's stack
 * buffers (sized by the caller's limits), no global state: every function is a pure
 * transformation of its arguments, so the numpy reference in aco.py / problem.py can
 * be checked against it value for value. */
#ifndef TRACKSIDE_ACOCORE_H
#define TRACKSIDE_ACOCORE_H

#define ACO_REAL 0
#define ACO_ORD 1
#define ACO_CAT 2

/* Categorical value probabilities (cumulative) for every categorical variable. */
void aco_cat_probs(int k, int d, const double *arch, const double *omega,
                   const int *vtype, const int *nvals, const int *cat_off,
                   double q, double *cat_cum, int *scratch);

/* Sample m new solutions (codes) around archive guides.  With nrot > 0 the real and
 * ordinal variables listed in rot_idx (nrot of them) are sampled in a rotated basis
 * (ACO_R's variable-correlation handling) built from u_rot (m x nrot uniforms); work
 * needs k*nrot + nrot*nrot + k + 2*nrot doubles. */
void aco_sample(int k, int d, int m, const double *arch, const double *cumw,
                const int *vtype, const double *lo, const double *hi,
                const int *nvals, const int *cat_off, const double *cat_cum,
                double xi, const double *u_guide, const double *z,
                const double *u_cat, double *out,
                int nrot, const int *rot_idx, const double *u_rot, double *work);

/* Decode codes to values (ordinal/categorical index -> value from table). */
void aco_decode(int n, int d, const double *codes, const int *vtype,
                const int *val_off, const double *table, double *out);

/* Insert m evaluated solutions into the archive (k rows, sorted by the same rule);
 * returns the lowest position an inserted row took (k if none entered).  Ranking:
 * penalty_mode ? f + penalty * v : rows with v <= eps first by f, then by v. */
int aco_insert(int k, int d, int m, double *arch, double *af, double *av,
               const double *newc, const double *nf, const double *nv,
               int penalty_mode, double penalty, double eps);

/* Training-plan problem (see problem.py for the meaning of every field). */
typedef struct {
    int n_sess, n_days, n_weeks, n_cat, n_areas;
    const int *sess_day;        /* day index of each session, increasing */
    const double *cat_lo;       /* allowed HRR band per category */
    const double *cat_hi;
    const double *transfer;     /* n_cat x n_areas */
    const double *area_w;       /* objective weight per area */
    const double *area_room;    /* 1 - current score per area (> 0) */
    const double *dfit;         /* per session exp(-(T - t)/tau1) */
    const double *dfat;         /* per session exp(-(T - t)/tau2) */
    const int *week_low;        /* per week: 1 if the ACWR lower bound applies */
    double trimp_a, trimp_b, k1, k2, f_const;
    double max_daily, hard_trimp, easy_trimp;
    double base_weekly, ramp;
    double acute0, chronic0, lam_a, lam_c;
    double acwr_lo, acwr_hi, acwr_daily_hi, mono_max;
    int taper_start, taper_end; /* days [start, end) ; taper_start < 0: no taper */
    double taper_keep, pre_taper_daily; /* pre_taper_daily used when history is needed */
    double band_scale;
} plan_params;

int plan_n_constraints(const plan_params *p);

/* Evaluate n plans X (n x 4*n_sess; per session: category index, position 0-1 inside the
 * category's HRR band, minutes, volume level): objective f, total violation viol and,
 * if g != NULL, the constraint matrix (n x plan_n_constraints). Returns 0, or -1 if
 * the horizon is too long for the stack buffers. */
int plan_eval(const plan_params *p, int n, const double *X, double *f,
              double *viol, double *g);

#endif
