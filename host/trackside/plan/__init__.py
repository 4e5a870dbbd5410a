"""Personalised training plans: ACO_MV solver with a C core (:mod:`.aco`), athlete model
(:mod:`.athlete`), plan problem (:mod:`.problem`), group statistics (:mod:`.stats`) and the
``trackside plan`` / ``trackside stats`` commands (:mod:`.cli`).  See docs/plans.md."""
