"""Pretrained model families loaded from local directories (``--model family:PATH``).

``hf-clap``: a Hugging Face ``ClapModel`` directory (LAION-CLAP), see :mod:`soundseek.models.clap`;
the parser and the family registry: :mod:`soundseek.models.spec`; original LAION-CLAP
checkpoints: :mod:`soundseek.models.laion_clap`.
"""
