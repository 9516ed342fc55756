"""The application: what ``python -m mamlnp`` runs, and what the chapters use to train, measure and draw.

============  ============================================================================================
``cli``       ``python -m mamlnp train|evaluate|plot|bench|grade``
``grade``     runs students' copies of a chapter notebook and reports each exercise (for teachers)
``train``     the training loop: checkpoints, exact resume, divergence handling
``evaluate``  held-out test tasks, adaptation curves, 95 % CIs, the results table
``plots``     the figures (matplotlib Figures that show as PNGs in notebooks)
``io``        ``.npz`` + JSON checkpoints, atomic writes, ``allow_pickle=False``, schema validation
``guard``     run-folder lock, writability and memory-size checks, stale temp files, atomic and strict-JSON writes
``bench``     timing and memory benchmarks (interleaved blocks, medians)
``perf``      the allocator setting the benchmarks and CLI use
``notebook``  fast mode and figure saving for the chapters
``article_setting``  the article's §4 loop in its own setting (64-d inputs, 10 classes, cross-entropy)
``omniglot``  the ``train omniglot`` family: config, training loop, evaluation (CIs, Lake's runs), CLI commands
``omniglot_plots``  task grids, accuracy vs steps, first-layer filters, embeddings
``omniglot_bench``  ``bench omniglot``: the Omniglot meta-step against torch.func, time and peak memory
============  ============================================================================================

May import everything else in mamlnp; nothing outside ``app`` imports from it (the exercises aside).
"""
