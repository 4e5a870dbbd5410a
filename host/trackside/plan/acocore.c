/* C core of trackside.plan (see acocore.h).  Mirrors the numpy reference in
 * aco.py (_NumpyCore) and problem.py (PlanProblem.evaluate_numpy) operation for
 * operation, in the same summation order, so the two agree to rounding. */
#include <math.h>
#include <string.h>
#include "acocore.h"

#define PLAN_MAX_DAYS 512
#define PLAN_MAX_WEEKS 80

void aco_cat_probs(int k, int d, const double *arch, const double *omega,
                   const int *vtype, const int *nvals, const int *cat_off,
                   double q, double *cat_cum, int *scratch)
{
    /* ACO_MV (Liao et al. 2014), categorical variables: value l gets weight
     * w_l = omega_{j_l} / u_l + q / eta, where j_l is the best archive rank using l,
     * u_l how many archive rows use it and eta how many values are unused. */
    for (int j = 0; j < d; j++) {
        if (vtype[j] != ACO_CAT) continue;
        int nv = nvals[j];
        int *count = scratch, *best = scratch + nv;
        double *w = cat_cum + cat_off[j];
        for (int v = 0; v < nv; v++) { count[v] = 0; best[v] = -1; }
        for (int r = 0; r < k; r++) {
            int v = (int)arch[(long)r * d + j];
            if (count[v] == 0) best[v] = r;
            count[v]++;
        }
        int eta = 0;
        for (int v = 0; v < nv; v++) if (count[v] == 0) eta++;
        double total = 0.0;
        for (int v = 0; v < nv; v++) {
            double wv = 0.0;
            if (count[v] > 0) wv = omega[best[v]] / count[v];
            if (eta > 0) wv += q / eta;
            total += wv;
            w[v] = total; /* cumulative */
        }
        for (int v = 0; v < nv; v++) w[v] /= total;
    }
}

static int pick(const double *cum, int n, double u)
{
    /* first index with u < cum[i] (cum normalised to end at 1) */
    for (int i = 0; i < n - 1; i++) if (u < cum[i]) return i;
    return n - 1;
}

static void sample_rotated(int k, int d, const double *arch, int l, int nrot,
                           const int *rot_idx, const int *vtype, const double *lo,
                           const double *hi, double xi, const double *z,
                           const double *u_rot, double *x, double *work)
{
    /* ACO_R (Socha & Dorigo 2008, variable correlation): an orthonormal basis from
     * guide-to-archive difference vectors (archive rows drawn with probability
     * proportional to their distance to the guide, modified Gram-Schmidt, completed
     * with unit vectors), sigma per rotated axis from the archive's projections. */
    double *D = work, *B = D + (long)k * nrot, *cum = B + (long)nrot * nrot;
    double *sig = cum + k, *w = sig + nrot;
    const double *g = arch + (long)l * d;
    double tot = 0.0, dmax = 0.0;
    for (int e = 0; e < k; e++) {
        double s = 0.0;
        for (int i = 0; i < nrot; i++) {
            double v = arch[(long)e * d + rot_idx[i]] - g[rot_idx[i]];
            D[(long)e * nrot + i] = v;
            s += v * v;
        }
        s = sqrt(s);
        if (s > dmax) dmax = s;
        tot += s;
        cum[e] = tot;
    }
    int nb = 0;
    if (tot > 0.0) {
        for (int i = 0; i < nrot; i++) {
            double u = u_rot[i] * tot;
            int r = k - 1;
            for (int e = 0; e < k - 1; e++) if (u < cum[e]) { r = e; break; }
            for (int t = 0; t < nrot; t++) w[t] = D[(long)r * nrot + t];
            for (int b = 0; b < nb; b++) {
                double dot = 0.0;
                for (int t = 0; t < nrot; t++) dot += w[t] * B[(long)b * nrot + t];
                for (int t = 0; t < nrot; t++) w[t] -= dot * B[(long)b * nrot + t];
            }
            double nw = 0.0;
            for (int t = 0; t < nrot; t++) nw += w[t] * w[t];
            nw = sqrt(nw);
            if (nw > 1e-12 * dmax) {
                for (int t = 0; t < nrot; t++) B[(long)nb * nrot + t] = w[t] / nw;
                nb++;
            }
        }
    }
    for (int i = 0; i < nrot && nb < nrot; i++) {
        for (int t = 0; t < nrot; t++) w[t] = t == i ? 1.0 : 0.0;
        for (int b = 0; b < nb; b++) {
            double dot = 0.0;
            for (int t = 0; t < nrot; t++) dot += w[t] * B[(long)b * nrot + t];
            for (int t = 0; t < nrot; t++) w[t] -= dot * B[(long)b * nrot + t];
        }
        double nw = 0.0;
        for (int t = 0; t < nrot; t++) nw += w[t] * w[t];
        nw = sqrt(nw);
        if (nw > 1e-6) {
            for (int t = 0; t < nrot; t++) B[(long)nb * nrot + t] = w[t] / nw;
            nb++;
        }
    }
    for (int b = 0; b < nrot; b++) {
        double s = 0.0;
        for (int e = 0; e < k; e++) {
            double dot = 0.0;
            for (int t = 0; t < nrot; t++) dot += D[(long)e * nrot + t] * B[(long)b * nrot + t];
            s += fabs(dot);
        }
        sig[b] = xi * s / (k - 1) * z[rot_idx[b]];
    }
    for (int t = 0; t < nrot; t++) {
        double v = g[rot_idx[t]];
        for (int b = 0; b < nrot; b++) v += sig[b] * B[(long)b * nrot + t];
        int j = rot_idx[t];
        if (v < lo[j]) v = lo[j];
        if (v > hi[j]) v = hi[j];
        if (vtype[j] == ACO_ORD) v = floor(v + 0.5);
        x[j] = v;
    }
}

void aco_sample(int k, int d, int m, const double *arch, const double *cumw,
                const int *vtype, const double *lo, const double *hi,
                const int *nvals, const int *cat_off, const double *cat_cum,
                double xi, const double *u_guide, const double *z,
                const double *u_cat, double *out,
                int nrot, const int *rot_idx, const double *u_rot, double *work)
{
    for (int a = 0; a < m; a++) {
        int l = pick(cumw, k, u_guide[a]);   /* one guide per ant */
        const double *g = arch + (long)l * d;
        double *x = out + (long)a * d;
        if (nrot == 0) {
            /* ACO_R: sigma_j = xi * mean distance of the archive to the guide; summed row
             * by row (contiguous, same order as the numpy reference) into x */
            double *restrict acc = x;
            const double *restrict gg = g;
            for (int j = 0; j < d; j++) acc[j] = 0.0;
            for (int e = 0; e < k; e++) {
                const double *restrict r = arch + (long)e * d;
                for (int j = 0; j < d; j++) acc[j] += fabs(r[j] - gg[j]);
            }
        }
        for (int j = 0; j < d; j++) {
            if (vtype[j] == ACO_CAT) {
                x[j] = (double)pick(cat_cum + cat_off[j], nvals[j], u_cat[(long)a * d + j]);
                continue;
            }
            if (nrot > 0) continue;  /* sampled below in the rotated basis */
            double v = g[j] + xi * x[j] / (k - 1) * z[(long)a * d + j];
            if (v < lo[j]) v = lo[j];          /* clamp illegal values */
            if (v > hi[j]) v = hi[j];
            if (vtype[j] == ACO_ORD) v = floor(v + 0.5); /* ordinal relaxation */
            x[j] = v;
        }
        if (nrot > 0)
            sample_rotated(k, d, arch, l, nrot, rot_idx, vtype, lo, hi, xi, z + (long)a * d,
                           u_rot + (long)a * nrot, x, work);
    }
}

void aco_decode(int n, int d, const double *codes, const int *vtype,
                const int *val_off, const double *table, double *out)
{
    for (long i = 0; i < (long)n * d; i++) {
        int j = (int)(i % d);
        out[i] = vtype[j] == ACO_REAL ? codes[i] : table[val_off[j] + (int)codes[i]];
    }
}

static int worse(double f1, double v1, double f2, double v2, int pen, double pw, double eps)
{
    /* is (f1, v1) ranked strictly after (f2, v2)? */
    if (pen) return f1 + pw * v1 > f2 + pw * v2;
    /* feasibility first (Deb 2000); with eps > 0 the epsilon level comparison
     * (Takahama & Sakai): violations up to eps count as feasible */
    int c1 = v1 > eps, c2 = v2 > eps;
    if (c1 != c2) return c1 > c2;
    return c1 ? v1 > v2 : f1 > f2;
}

int aco_insert(int k, int d, int m, double *arch, double *af, double *av,
               const double *newc, const double *nf, const double *nv,
               int penalty_mode, double penalty, double eps)
{
    int lowest = k;
    for (int i = 0; i < m; i++) {
        /* upper bound: after every row ranked no worse (stable, like a merge sort) */
        int p = k;
        while (p > 0 && worse(af[p - 1], av[p - 1], nf[i], nv[i], penalty_mode, penalty, eps)) p--;
        if (p >= k) continue;
        memmove(arch + (long)(p + 1) * d, arch + (long)p * d, sizeof(double) * (size_t)(k - 1 - p) * d);
        memmove(af + p + 1, af + p, sizeof(double) * (size_t)(k - 1 - p));
        memmove(av + p + 1, av + p, sizeof(double) * (size_t)(k - 1 - p));
        memcpy(arch + (long)p * d, newc + (long)i * d, sizeof(double) * (size_t)d);
        af[p] = nf[i];
        av[p] = nv[i];
        if (p < lowest) lowest = p;
    }
    return lowest;
}

int plan_n_constraints(const plan_params *p)
{
    return 4 * p->n_sess - 1 + 4 * p->n_weeks + p->n_days + 1;
}

static double pos(double x) { return x > 0.0 ? x : 0.0; }

int plan_eval(const plan_params *p, int n, const double *X, double *f,
              double *viol, double *g)
{
    int S = p->n_sess, D = p->n_days, W = p->n_weeks, A = p->n_areas;
    if (D > PLAN_MAX_DAYS || W > PLAN_MAX_WEEKS || A > 16 || S > PLAN_MAX_DAYS) return -1;
    int nc = plan_n_constraints(p);
    double load[PLAN_MAX_DAYS], trimp[PLAN_MAX_DAYS], hrrs[PLAN_MAX_DAYS], week[PLAN_MAX_WEEKS], fit[16];
    double gbuf[4 * PLAN_MAX_DAYS + 4 * PLAN_MAX_WEEKS + PLAN_MAX_DAYS + 2];
    double md = p->max_daily, bw = p->base_weekly, bs = p->band_scale;
    for (int i = 0; i < n; i++) {
        const double *x = X + (long)i * 4 * S;
        double *gg = g ? g + (long)i * nc : gbuf;
        int c = 0;
        for (int t = 0; t < D; t++) load[t] = 0.0;
        for (int a = 0; a < A; a++) fit[a] = 0.0;
        double fat = 0.0;
        for (int s = 0; s < S; s++) {
            int cat = (int)x[4 * s];
            /* intensity variable = position inside the category's HRR band */
            double hrr = p->cat_lo[cat] + x[4 * s + 1] * (p->cat_hi[cat] - p->cat_lo[cat]);
            double dur = x[4 * s + 2], vol = x[4 * s + 3] / 3.0;
            hrrs[s] = hrr;
            /* Banister TRIMP: minutes x HRR fraction x a e^(b HRR) */
            double tr = dur * hrr * p->trimp_a * exp(p->trimp_b * hrr);
            trimp[s] = tr;
            load[p->sess_day[s]] += tr;
            double sv = sqrt(vol);
            for (int a = 0; a < A; a++) fit[a] += tr * p->transfer[cat * A + a] * sv * p->dfit[s];
            fat += tr * vol * p->dfat[s];
        }
        /* objective: weakness-weighted gain of the ability scores on the target date */
        double perf = 0.0;
        for (int a = 0; a < A; a++)
            perf += p->area_w[a] * p->area_room[a] * (1.0 - exp(-p->k1 * fit[a] / p->area_room[a]));
        f[i] = -(perf - p->k2 * fat) + p->f_const;
        /* heart-rate band of the session's category (inside the athlete's interval) */
        for (int s = 0; s < S; s++) gg[c++] = (p->cat_lo[(int)x[4 * s]] - hrrs[s]) / bs;
        for (int s = 0; s < S; s++) gg[c++] = (hrrs[s] - p->cat_hi[(int)x[4 * s]]) / bs;
        for (int s = 0; s < S; s++) gg[c++] = (trimp[s] - md) / md;
        /* recovery: the day after a hard session is easy (or rest) */
        for (int s = 0; s + 1 < S; s++) {
            if (p->sess_day[s + 1] == p->sess_day[s] + 1) {
                double a1 = trimp[s] - p->hard_trimp, a2 = trimp[s + 1] - p->easy_trimp;
                gg[c++] = (a1 < a2 ? a1 : a2) / md;
            } else {
                gg[c++] = -1.0;
            }
        }
        for (int w = 0; w < W; w++) {
            double sum = 0.0;
            int t1 = 7 * w + 7 < D ? 7 * w + 7 : D;
            for (int t = 7 * w; t < t1; t++) sum += load[t];
            week[w] = sum;
        }
        /* weekly load ramp */
        for (int w = 0; w < W; w++) {
            double prev = w == 0 ? bw : week[w - 1];
            gg[c++] = (week[w] - (1.0 + p->ramp) * prev) / bw;
        }
        /* Foster monotony: mean / sd of the week's daily loads (sample sd) */
        for (int w = 0; w < W; w++) {
            int t0 = 7 * w, t1 = 7 * w + 7 < D ? 7 * w + 7 : D, nd = t1 - t0;
            double mean = week[w] / nd, ss = 0.0;
            for (int t = t0; t < t1; t++) ss += (load[t] - mean) * (load[t] - mean);
            double sd = nd > 1 ? sqrt(ss / (nd - 1)) : 0.0;
            gg[c++] = (mean - p->mono_max * sd) / (bw / 7.0);
        }
        /* EWMA acute:chronic workload ratio (Williams et al. 2017) */
        double ac = p->acute0, ch = p->chronic0;
        int cw = c, cd = c + 2 * W;
        for (int t = 0; t < D; t++) {
            ac = p->lam_a * load[t] + (1.0 - p->lam_a) * ac;
            ch = p->lam_c * load[t] + (1.0 - p->lam_c) * ch;
            double r = ac / ch;
            gg[cd + t] = r - p->acwr_daily_hi;
            if (t % 7 == 6 || t == D - 1) {
                int w = t / 7;
                gg[cw + w] = r - p->acwr_hi;
                gg[cw + W + w] = p->week_low[w] ? p->acwr_lo - r : -1.0;
            }
        }
        c = cd + D;
        /* taper: mean daily load over the taper <= keep x the 21 days before */
        if (p->taper_start >= 0) {
            double pre = 0.0, tap = 0.0;
            for (int t = p->taper_start - 21; t < p->taper_start; t++)
                pre += t < 0 ? p->pre_taper_daily : load[t];
            for (int t = p->taper_start; t < p->taper_end; t++) tap += load[t];
            gg[c++] = (tap / (p->taper_end - p->taper_start) - p->taper_keep * pre / 21.0) / (bw / 7.0);
        } else {
            gg[c++] = -1.0;
        }
        double v = 0.0;
        for (int j = 0; j < nc; j++) v += pos(gg[j]);
        viol[i] = v;
    }
    return 0;
}
