"""pretrain.resume_settings: the run's config.yaml fills what is not given; a run written before
--fit existed squashed its images, so it resumes squashing."""
from __future__ import annotations

import pytest
import yaml

from medcl.errors import ConfigError
from medcl.pretrain import PretrainConfig, resume_settings


def _run(tmp_path, **stored):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"method": "simclr", "width": 0.25, **stored}))
    return PretrainConfig.from_options(out=str(tmp_path), resume="auto")


def test_run_values_fill_options_not_given(tmp_path):
    cfg = resume_settings(_run(tmp_path, fit="crop"), given=set())
    assert (cfg.method, cfg.width, cfg.fit) == ("simclr", 0.25, "crop")


def test_a_run_from_before_fit_resumes_squashing(tmp_path):
    assert resume_settings(_run(tmp_path), given=set()).fit == "squash"


def test_another_fit_is_refused(tmp_path):
    cfg = _run(tmp_path)
    with pytest.raises(ConfigError, match=r"--fit pad \(the run has squash\)"):
        resume_settings(cfg, given={"fit"})
