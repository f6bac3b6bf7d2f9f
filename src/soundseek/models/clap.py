"""CLAP (LAION-CLAP in the Hugging Face ``ClapModel`` layout) as a whole search model: the
recipe of a local directory (``hf-clap:PATH``). The towers and their loader are
:mod:`soundseek.encoders.clap`, whose names this module also offers under their former path."""
from __future__ import annotations

import math
from pathlib import Path

from soundseek.encoders.clap import (FAMILY, HINT, OUTPUTS, ClapAudioEncoder, ClapTextEncoder,  # noqa: F401
                                     clap_dir, load_clap, read_logit_scales)


def clap_config(path: Path):
    """The recipe of a CLAP directory as a complete search model (``hf-clap:PATH``): the CLAP
    towers (audio ``output="embedding"``), the ``clap`` scorer with the checkpoint's logit
    scales, NT-Xent at its temperature (fine-tuning keeps CLAP's own objective)."""
    import json

    from soundseek.models.config import Config

    p = clap_dir(path)
    proj = int(json.loads((p / "config.json").read_text(encoding="utf-8")).get("projection_dim", 512))
    scale_a, scale_t = read_logit_scales(p)  # from the weights file, without building the towers
    cfg = Config()
    cfg.encoders.audio = FAMILY
    cfg.encoders.audio_options = {"path": str(p), "output": "embedding"}
    cfg.encoders.text = FAMILY
    cfg.encoders.text_path = str(p)
    cfg.encoders.max_tokens = 77
    cfg.encoders.cache_dtype = "float32"  # one vector per window: exact scores cost nothing
    cfg.data.max_seconds = 600.0  # whole files: fusion / windowing handle the length
    cfg.model.scorer = "clap"
    cfg.model.embed_dim = proj
    cfg.model.options = {"logit_scale_a": scale_a, "logit_scale_t": scale_t}
    cfg.loss.name = "ntxent"
    cfg.loss.options = {"temperature": math.exp(-scale_a)}  # the model's own A2T temperature
    return cfg
