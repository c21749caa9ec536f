"""The world: a platform simulator that runs recstream for real (SPEC §5).

Importing this package does nothing; ``recstream.sim.cli.main`` builds a
world and runs it.  Modules, by role: ``options`` (SimOptions), ``films`` /
``population`` / ``taste`` / ``world`` (the seeded world model), ``realdata``
(MovieLens and course JSON worlds), ``sources`` (which of them to build),
``behaviour`` (pick, watch, rate), ``lines`` (movielog formatting),
``traffic`` (the platform loop), ``recommenders`` (HTTP client and yardstick
policies), ``scenarios`` (faults, attacks), ``api`` (:8080), ``sinks``
(Kafka, files, ground truth), ``telemetry`` (/metrics, summaries).
"""
