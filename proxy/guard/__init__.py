"""Guard-rails around a request: client keys (:mod:`.keys`), token windows and their
stores (:mod:`.budgets`), and how the app reserves, settles and survives a store outage
(:mod:`.scopes`)."""
