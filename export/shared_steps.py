"""The steps every export target shares: networks built from checkpoints, the manifest and the last line."""

from __future__ import annotations

import resource
import time
from pathlib import Path

from gsv_export.checkpoints import SV_FILE_NAME, GptCheckpoint, SovitsCheckpoint, SvCheckpoint, load_sv
from gsv_triton.errors import UserError
from gsv_triton.manifest import PRO_VERSIONS, Manifest, SovitsShape
from gsv_triton.model_sets import DEFAULT_SET
from gsv_triton.networks.sovits import SynthesizerTrn, fold_weight_norm
from gsv_triton.networks.t2s import T2SConfig, Text2SemanticDecoder

DEFAULT_MAX_SEC = 54  # upstream s1 config default when a GPT file carries no data.max_sec


def load_t2s(ckpt: GptCheckpoint) -> Text2SemanticDecoder:
    """The GPT network with the checkpoint's weights (strict, like upstream)."""
    decoder = Text2SemanticDecoder(T2SConfig.from_checkpoint_config(ckpt.config))
    decoder.load_state_dict(ckpt.state_dict, strict=True)
    return decoder.eval()


def load_synthesizer(ckpt: SovitsCheckpoint) -> SynthesizerTrn:
    """The SoVITS network (inference parts; the posterior encoder is dropped) with folded weight norm."""
    model = SynthesizerTrn.from_hparams(ckpt.hparams["model"], ckpt.model_version)
    weights = {k: v for k, v in ckpt.state_dict.items() if not k.startswith("enc_q.")}
    model.load_state_dict(fold_weight_norm(weights), strict=True)
    return model.eval()


def check_compatible(gpt: GptCheckpoint, sovits: SovitsCheckpoint) -> None:
    """A v1 GPT (512 phoneme rows) cannot read v2 phoneme ids (up to 731)."""
    if gpt.symbol_version == "v1" and sovits.symbol_version == "v2":
        raise UserError(
            f"{gpt.path} is a v1 GPT (512 phoneme rows) but {sovits.path} is a v2 SoVITS model: "
            "use the GPT file trained with that SoVITS model"
        )


def speaker_verification(sovits: SovitsCheckpoint, sv: Path | None) -> SvCheckpoint | None:
    """The SV checkpoint a Pro SoVITS model needs (``--sv``); None for v1/v2, which have no speaker vector."""
    if sovits.model_version not in PRO_VERSIONS:
        if sv is not None:
            print(f"[export] note: --sv {sv} is not used: {sovits.path} is a SoVITS {sovits.model_version} model, "
                  "which has no speaker vector", flush=True)  # fmt: skip
        return None
    if sv is None:
        raise UserError(
            f"{sovits.path} is a SoVITS {sovits.model_version} model: pass its speaker-verification file with "
            f"--sv FILE (upstream's GPT_SoVITS/pretrained_models/sv/{SV_FILE_NAME})"
        )
    return load_sv(sv)


def load_speaker_encoder(ckpt: SvCheckpoint):
    """The ERes2NetV2 network with the checkpoint's weights (strict, as upstream's plain load_state_dict)."""
    from gsv_triton.networks.eres2net import ERes2NetV2

    model = ERes2NetV2()
    model.load_state_dict(ckpt.state_dict, strict=True)
    return model.eval()


def write_manifest(
    out: Path,
    target: str,
    gpt_ckpt: GptCheckpoint,
    sovits_ckpt: SovitsCheckpoint,
    t2s: Text2SemanticDecoder,
    synthesizer: SynthesizerTrn,
    sources: dict[str, Path | None],
    paths: dict[str, Path],
    flags: dict,
    model_set: str = DEFAULT_SET,
    shared_files: dict[str, str] | None = None,
) -> None:
    """``REPO/gsv_manifest.json``: versions, configs, sources and files of an export (every target).

    ``sources`` maps gpt, sovits, hubert, bert (and sv for Pro) to their paths; ``flags`` the target's own keys
    (fp16, quantize...). ``model_set`` names the set this export adds; ``shared_files`` the shared networks it
    uses but did not write (a set added to a repository).
    """
    max_sec = int(gpt_ckpt.config.get("data", {}).get("max_sec", DEFAULT_MAX_SEC))
    Manifest(
        target=target,
        flags=flags,
        symbol_version=sovits_ckpt.symbol_version,
        sovits_version=sovits_ckpt.model_version,
        sampling_rate=int(sovits_ckpt.hparams["data"]["sampling_rate"]),
        t2s=t2s.config.__dict__ | {"max_sec": max_sec},
        sovits=SovitsShape(synthesizer.inter_channels, synthesizer.gin_channels),
        sources={name: str(path) for name, path in sources.items() if path is not None},
        files={**(shared_files or {}), **{name: str(path.relative_to(out)) for name, path in paths.items()}},
    ).write(out, model_set)


def report_export(out: Path, paths: dict[str, Path], what: str, started: float) -> None:
    """The export's last line: what was written, how long it took, the peak memory."""
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"[export] wrote {len(paths)} {what} to {out} in {time.perf_counter() - started:.1f} s "
          f"(peak RSS {peak_mb:.0f} MB)", flush=True)
