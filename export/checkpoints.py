"""Read and write upstream GPT-SoVITS checkpoint files (spec sections 1.1 to 1.3, 2.5).

* GPT (s1) ``.ckpt``: a ``torch.save`` zip holding ``weight`` (``model.``-prefixed state dict), ``config``
  (a plain dict) and ``info``.
* SoVITS (s2) ``.pth``: ``weight`` (no ``model.`` prefix, weight norm as ``weight_g``/``weight_v``),
  ``config`` (a pickled ``utils.HParams``) and ``info``; the first two bytes ``PK`` may be replaced by an
  ASCII version code.
* Speaker verification (v2Pro/v2ProPlus) ``pretrained_eres2netv2w24s4ep4.ckpt``: a plain ``torch.save`` of the
  ERes2NetV2 state dict (BatchNorm buffers included).

Files are read with torch's ``weights_only`` unpickler; the one non-tensor class real SoVITS files need,
``utils.HParams``, is mapped to :class:`AttrDict`, so no upstream code runs and any other global is refused.
Every problem with a file becomes a one-line :class:`~gsv_triton.errors.UserError` naming the file.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
import sys
import types
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gsv_triton.errors import UserError
from gsv_triton.manifest import PRO_VERSIONS

ZIP_MAGIC = b"PK"
# Protocol-2 pickle opcode: the first byte of torch's legacy (pre-zip) serialisation format.
LEGACY_PICKLE_MAGIC = b"\x80\x02"
GPT_PREFIX = "model."
POSTERIOR_PREFIX = "enc_q."

# Spec 1.3, step 2: the 2-byte ASCII code that may replace "PK" -> (symbol version, model version, is LoRA).
HEADER_VERSIONS: dict[str, tuple[str, str, bool]] = {
    "00": ("v1", "v1", False),
    "01": ("v2", "v2", False),
    "02": ("v2", "v3", False),
    "03": ("v2", "v3", True),
    "04": ("v2", "v4", True),
    "05": ("v2", "v2Pro", False),
    "06": ("v2", "v2ProPlus", False),
}
# Spec 1.3, step 1: MD5 of the first 8 KiB of the released pretrained files.
HASH_BYTES = 8192
PRETRAINED_HASHES: dict[str, tuple[str, str, bool]] = {
    "dc3c97e17592963677a4a1681f30c653": ("v2", "v2", False),  # s2G488k (v1; the structure corrects it)
    "6642b37f3dbb1f76882b69937c95a5f3": ("v2", "v2", False),  # s2G2333K
    "43797be674a37c1c83ee81081941ed0f": ("v2", "v3", False),  # s2Gv3
    "4f26b9476d0c5033e04162c486074374": ("v2", "v4", False),  # s2Gv4
    "c7e9fce2223f3db685cdfa1e6368728a": ("v2", "v2Pro", False),  # s2Gv2Pro
    "66b313e39455b57ab1b0bc0b239c9d0a": ("v2", "v2ProPlus", False),  # s2Gv2ProPlus
}
# Spec 1.3, step 3: upstream's size thresholds for files without hash or header.
V1_SIZE_LIMIT = 82978 * 1024
V2_SIZE_LIMIT = 700 * 1024 * 1024

SUPPORTED_SOVITS = ("v1", "v2", *PRO_VERSIONS)
# savee writes v2Pro/v2ProPlus fine-tunes through my_save2, with their codes over "PK" (spec 1.3).
PRO_HEADERS = {model: code for code, (_, model, lora) in HEADER_VERSIONS.items() if model in PRO_VERSIONS and not lora}
# Symbol-table sizes (spec 4.3) and the GPT phoneme-embedding rows that go with them (spec 1.1, section 8).
SOVITS_V1_SYMBOLS = 322
GPT_PHONEME_VOCAB = {512: "v1", 732: "v2"}

TEXT_EMBEDDING_KEY = "enc_p.text_embedding.weight"
GPT_TEXT_EMBEDDING_KEY = "ar_text_embedding.word_embeddings.weight"
SV_EMB_KEY = "sv_emb.weight"
DEC_CONV_PRE_KEY = "dec.conv_pre.weight"
# ProPlus's first upsampling kernel (Pro: 16). The spec's rule, conv_pre 768 wide, says the same for released
# files; the kernel also holds for narrow (demo) decoders.
PROPLUS_FIRST_KERNEL = 20
FIRST_UPSAMPLE_KEYS = ("dec.ups.0.weight_v", "dec.ups.0.weight")
# Keys every v1/v2 SynthesizerTrn file must hold (a cheap check before the full key comparison).
SOVITS_CORE_KEYS = (
    "ssl_proj.weight",
    "quantizer.vq.layers.0._codebook.embed",
    TEXT_EMBEDDING_KEY,
    "ref_enc.fc.fc.weight",
    DEC_CONV_PRE_KEY,
)
# Top-level parts of the v1/v2 SynthesizerTrn; other keys in a SoVITS file are ignored like upstream does.
SOVITS_PARTS = ("ssl_proj.", "quantizer.", "enc_p.", "ref_enc.", "flow.", "dec.", POSTERIOR_PREFIX,
                "sv_emb.", "ge_to512.", "prelu.")  # fmt: skip
GPT_INFO = "GPT-e15"
SOVITS_INFO = "0epoch_0iteration"
SV_FILE_NAME = "pretrained_eres2netv2w24s4ep4.ckpt"  # upstream: GPT_SoVITS/pretrained_models/sv/
_MAX_REASON = 160


# ----------------------------------------------------------------------------------------------------
# The hparams object


class AttrDict:
    """Recursive attribute dict standing in for upstream's ``utils.HParams`` (spec 1.2).

    Values live in the instance ``__dict__`` like upstream, so ``vars(hps.model)`` gives the constructor
    kwargs, and the pickle BUILD step (update ``__dict__``) fills it. Attribute access, item access, ``in``,
    ``keys()/items()/values()``, ``get`` and ``len`` work on every level.
    """

    def __init__(self, mapping: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        for key, value in {**dict(mapping or {}), **kwargs}.items():
            self[key] = value

    @classmethod
    def wrap(cls, value: Any) -> Any:
        """Convert nested dicts / HParams-like objects to AttrDict; other values unchanged."""
        if isinstance(value, AttrDict):
            return cls({k: cls.wrap(v) for k, v in value.items()})
        if isinstance(value, Mapping):
            return cls({str(k): cls.wrap(v) for k, v in value.items()})
        return value

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        # Pickle BUILD: upstream HParams has no __setstate__, so its state is the plain attribute dict.
        for key, value in dict(state).items():
            self[key] = value

    def __setitem__(self, key: str, value: Any) -> None:
        if isinstance(value, Mapping) and not isinstance(value, AttrDict):
            value = self.wrap(value)
        self.__dict__[key] = value

    def __setattr__(self, key: str, value: Any) -> None:
        self[key] = value  # hps.model.version = ... works like upstream, with the same wrapping

    def __getitem__(self, key: str) -> Any:
        try:
            return self.__dict__[key]
        except KeyError:
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        return key in self.__dict__

    def __iter__(self) -> Iterator[str]:
        return iter(self.__dict__)

    def __len__(self) -> int:
        return len(self.__dict__)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AttrDict):
            return self.to_dict() == other.to_dict()
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return NotImplemented

    __hash__ = None  # mutable

    def keys(self):
        return self.__dict__.keys()

    def items(self):
        return self.__dict__.items()

    def values(self):
        return self.__dict__.values()

    def get(self, key: str, default: Any = None) -> Any:
        return self.__dict__.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """A plain nested dict (for JSON, logging or a writer)."""
        return {k: v.to_dict() if isinstance(v, AttrDict) else v for k, v in self.__dict__.items()}

    def __repr__(self) -> str:
        return f"AttrDict({self.__dict__!r})"


Mapping.register(AttrDict)  # so code that accepts a Mapping (dict(), **, isinstance) takes it too


class _UpstreamHParams:
    """Pickles exactly like upstream's ``utils.HParams`` (global ``utils HParams``, NEWOBJ + BUILD)."""

    def __init__(self, **kwargs: Any) -> None:
        for key, value in kwargs.items():
            self.__dict__[key] = _UpstreamHParams(**value) if isinstance(value, Mapping) else value


_UpstreamHParams.__module__ = "utils"
_UpstreamHParams.__qualname__ = "HParams"
_UpstreamHParams.__name__ = "HParams"


@contextmanager
def _upstream_utils_module() -> Iterator[None]:
    """Make ``utils.HParams`` resolvable while pickling (pickle checks the global by importing it)."""
    previous = sys.modules.get("utils")
    module = types.ModuleType("utils")
    module.HParams = _UpstreamHParams
    sys.modules["utils"] = module
    try:
        yield
    finally:
        if previous is None:
            sys.modules.pop("utils", None)
        else:
            sys.modules["utils"] = previous


# ----------------------------------------------------------------------------------------------------
# Results


@dataclass
class GptCheckpoint:
    """A loaded GPT (s1) file. ``state_dict`` keys have no ``model.`` prefix; tensors are float32."""

    config: dict
    state_dict: dict[str, torch.Tensor]
    symbol_version: str
    path: Path
    info: str | None = None


@dataclass
class SovitsCheckpoint:
    """A loaded SoVITS (s2) file; weight norm is still stored as ``weight_g``/``weight_v`` pairs."""

    hparams: AttrDict
    state_dict: dict[str, torch.Tensor]
    model_version: str
    symbol_version: str
    has_posterior: bool
    path: Path
    header: str | None = None
    info: str | None = None
    ignored_keys: list[str] = field(default_factory=list)
    detection: dict[str, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------------
# Container reading


def _fail(path: Path, problem: str) -> UserError:
    return UserError(f"{path}: {problem}")


def _short(exc: BaseException) -> str:
    """First line of an exception message, trimmed, so errors stay one line."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def _read_header(path: Path) -> tuple[str | None, bytes]:
    """Check that ``path`` is a non-empty torch file; return (version header or None, first 8 KiB)."""
    if not path.exists():
        raise _fail(path, "file not found")
    if not path.is_file():
        raise _fail(path, "not a file")
    try:
        with path.open("rb") as fh:
            head = fh.read(HASH_BYTES)
    except OSError as exc:
        raise _fail(path, f"cannot read file ({exc.strerror or _short(exc)})") from None
    if not head:
        raise _fail(path, "empty file")
    magic = head[:2]
    if magic in (ZIP_MAGIC, LEGACY_PICKLE_MAGIC):
        return None, head
    code = magic.decode("ascii", errors="replace")
    if code in HEADER_VERSIONS:
        return code, head
    raise _fail(path, f"not a PyTorch checkpoint (starts with bytes {magic!r})")


def _load_container(path: Path, header: str | None) -> Any:
    """``torch.load`` the file (restoring ``PK`` over a version header) with the restricted unpickler."""
    try:
        if header is None:
            source: Any = str(path)
        else:
            data = path.read_bytes()
            source = io.BytesIO(ZIP_MAGIC + data[2:])
        with torch.serialization.safe_globals([(AttrDict, "utils.HParams")]):
            return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        match = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        reason = f"refers to the disallowed Python global {match.group(1)}" if match else _short(exc)
        raise _fail(path, f"not a GPT-SoVITS checkpoint ({reason})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, TypeError, KeyError, OSError) as exc:
        reason = _short(exc)
        if "zip archive" in reason or isinstance(exc, zipfile.BadZipFile | EOFError):
            reason = "truncated or corrupt zip archive"
        raise _fail(path, f"not a readable PyTorch checkpoint ({reason})") from None


def _weights(path: Path, top: Any) -> Mapping[str, Any]:
    if not isinstance(top, Mapping):
        raise _fail(path, f"not a GPT-SoVITS checkpoint (top level is {type(top).__name__}, not a dict)")
    weight = top.get("weight")
    if not isinstance(weight, Mapping) or not weight:
        raise _fail(path, "not a GPT-SoVITS checkpoint (no 'weight' state dict)")
    bad = [k for k, v in weight.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise _fail(path, f"'weight' holds a non-tensor entry {bad[0]!r}")
    return weight


def _to_float32(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Fine-tunes are fp16; integer buffers (if any) keep their dtype.
    return {k: (v.float() if v.is_floating_point() else v) for k, v in weights.items()}


def _looks_like_gpt(weights: Mapping[str, Any]) -> bool:
    return all(k.startswith(GPT_PREFIX) for k in weights)


# ----------------------------------------------------------------------------------------------------
# GPT


def load_gpt(path: Path | str) -> GptCheckpoint:
    """Load a GPT (s1) ``.ckpt``; anything that is not a usable v1/v2 GPT file raises a one-line UserError."""
    path = Path(path)
    header, _ = _read_header(path)
    if header is not None:
        raise _fail(path, f"has a SoVITS version header {header!r}; expected a GPT (s1) .ckpt file")
    top = _load_container(path, header)
    weights = _weights(path, top)
    if not _looks_like_gpt(weights):
        if TEXT_EMBEDDING_KEY in weights or any(k.startswith("enc_p.") for k in weights):
            raise _fail(path, "looks like a SoVITS (s2) .pth file, expected a GPT (s1) .ckpt file")
        if "conv1.weight" in weights and any(k.startswith("layer1.") for k in weights):
            raise _fail(path, "looks like the speaker-verification (ERes2NetV2) file, expected a GPT (s1) .ckpt file")
        first = next(iter(weights))
        raise _fail(path, f"not a GPT (s1) checkpoint (key {first!r} lacks the 'model.' prefix)")
    config = top.get("config")
    if not isinstance(config, Mapping) or not isinstance(config.get("model"), Mapping):
        raise _fail(path, "GPT checkpoint has no 'config' dict with a 'model' section")
    config = _plain(config)
    state = _to_float32({k[len(GPT_PREFIX) :]: v for k, v in weights.items()})

    embedding = state.get(GPT_TEXT_EMBEDDING_KEY)
    if embedding is None:
        raise _fail(path, f"GPT checkpoint is missing the key {GPT_PREFIX + GPT_TEXT_EMBEDDING_KEY!r}")
    rows = int(embedding.shape[0])
    declared = config["model"].get("phoneme_vocab_size", rows)
    if declared != rows:
        raise _fail(path, f"config says phoneme_vocab_size={declared}, the phoneme embedding has {rows} rows")
    if rows not in GPT_PHONEME_VOCAB:
        raise _fail(path, f"unsupported phoneme vocabulary of {rows} entries (v1 has 512, v2 has 732)")
    _check_gpt_keys(path, config, state)
    info = top.get("info")
    return GptCheckpoint(
        config=config,
        state_dict=state,
        symbol_version=GPT_PHONEME_VOCAB[rows],
        path=path,
        info=info if isinstance(info, str) else None,
    )


def _plain(value: Any) -> Any:
    if isinstance(value, AttrDict):
        return _plain(value.to_dict())
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _check_gpt_keys(path: Path, config: Mapping, state: Mapping[str, torch.Tensor]) -> None:
    """Upstream loads the GPT strictly: the file must hold exactly the network's keys and shapes."""
    from gsv_triton.networks.t2s import T2SConfig, Text2SemanticDecoder

    try:
        cfg = T2SConfig.from_checkpoint_config(config)
    except (UserError, KeyError, TypeError, ValueError) as exc:
        raise _fail(path, f"GPT config is unusable ({_short(exc)})") from None
    expected = _meta_shapes(lambda: Text2SemanticDecoder(cfg))
    _compare_keys(path, "GPT", expected, state, prefix=GPT_PREFIX)


def _meta_shapes(build) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a network, built on the meta device (no memory, no init cost) when it allows."""
    try:
        with torch.device("meta"):
            module = build()
    except (RuntimeError, NotImplementedError):  # a constructor computed on real data: build it on the CPU
        module = build()
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _compare_keys(
    path: Path,
    what: str,
    expected: Mapping[str, tuple[int, ...]],
    actual: Mapping[str, torch.Tensor],
    prefix: str = "",
) -> None:
    missing = [k for k in expected if k not in actual]
    unexpected = [k for k in actual if k not in expected]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise _fail(path, f"{what} checkpoint is missing the key {prefix + missing[0]!r}{more}")
    if unexpected:
        more = f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else ""
        raise _fail(path, f"{what} checkpoint has an unexpected key {prefix + unexpected[0]!r}{more}")
    for key, shape in expected.items():
        got = tuple(actual[key].shape)
        if got != shape:
            name = prefix + key
            raise _fail(path, f"{what} key {name!r} has shape {list(got)}, the config implies {list(shape)}")


def save_gpt(
    path: Path | str,
    config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    fp16: bool = True,
    info: str = GPT_INFO,
) -> Path:
    """Write a GPT ``.ckpt`` laid out like ``s1_train.py``'s "every weights" callback (spec 1.1)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weight: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state_dict.items():
        weight[GPT_PREFIX + key] = _stored(value, fp16)
    top: OrderedDict[str, Any] = OrderedDict()
    top["weight"] = weight
    top["config"] = _plain(config)
    top["info"] = info
    torch.save(top, str(path))
    return path


def _stored(value: torch.Tensor, fp16: bool) -> torch.Tensor:
    value = value.detach().cpu()
    if fp16 and value.is_floating_point():
        value = value.half()
    return value.clone().contiguous()


# ----------------------------------------------------------------------------------------------------
# SoVITS


def load_sovits(path: Path | str) -> SovitsCheckpoint:
    """Load a v1/v2/v2Pro/v2ProPlus SoVITS ``.pth``; other versions and bad files raise UserError (one line)."""
    path = Path(path)
    header, head = _read_header(path)
    size = path.stat().st_size
    upstream, source = _upstream_version(head, header, size)
    top = _load_container(path, header)
    weights = _weights(path, top)
    if _looks_like_gpt(weights):
        raise _fail(path, "looks like a GPT (s1) .ckpt file, expected a SoVITS (s2) .pth file")

    _, model_version, is_lora = upstream
    if is_lora or "lora_rank" in top:
        # LoRA files exist only for v3/v4 (header 03/04); a bare ``lora_rank`` entry says "LoRA" but not which.
        name, how = (model_version, source) if is_lora else ("v3/v4", "its lora_rank entry")
        raise _fail(path, f"SoVITS {name} LoRA checkpoint (detected by {how}) is not supported "
                          f"(only {'/'.join(SUPPORTED_SOVITS)})")
    structural = _structural_version(path, weights)
    # Hash and header are explicit markers and win; the size heuristic yields to the weights' structure.
    if source in ("hash", "header") and model_version not in SUPPORTED_SOVITS:
        detected, how = model_version, source
    elif structural == "v3/v4":
        detected, how = _pick_v3_v4(model_version, top.get("config")), "weights"
    else:
        detected, how = structural, "weights"
    if detected not in SUPPORTED_SOVITS:
        raise _fail(path, f"SoVITS {detected} checkpoint (detected by {how}) is not supported "
                          f"(only {'/'.join(SUPPORTED_SOVITS)})")
    if source in ("hash", "header") and model_version in PRO_VERSIONS and structural != model_version:
        # Upstream would build the marked network and load these weights into it (missing or misshaped keys).
        raise _fail(path, f"SoVITS {model_version} checkpoint (detected by {source}) holds {structural} weights")
    # v1 <=> the 322-symbol table (upstream's own override, spec 1.3 step 4); every later version uses v2's.
    symbol_version = "v1" if detected == "v1" else "v2"

    config = top.get("config")
    if not isinstance(config, Mapping):
        raise _fail(path, "SoVITS checkpoint has no 'config' hparams")
    hparams = AttrDict.wrap(config)
    if not isinstance(hparams.get("model"), AttrDict):
        raise _fail(path, "SoVITS config has no 'model' section")
    # What every upstream loader does before building the model (spec 1.2/1.3).
    hparams["model"]["version"] = detected
    hparams["model"]["semantic_frame_rate"] = "25hz"

    state = _to_float32(weights)
    has_posterior = any(k.startswith(POSTERIOR_PREFIX) for k in state)
    ignored = _check_sovits_keys(path, hparams, detected, state, has_posterior)
    for key in ignored:
        del state[key]
    info = top.get("info")
    return SovitsCheckpoint(
        hparams=hparams,
        state_dict=state,
        model_version=detected,
        symbol_version=symbol_version,
        has_posterior=has_posterior,
        path=path,
        header=header,
        info=info if isinstance(info, str) else None,
        ignored_keys=ignored,
        detection={"upstream": upstream[1], "source": source, "structure": structural},
    )


def _upstream_version(head: bytes, header: str | None, size: int) -> tuple[tuple[str, str, bool], str]:
    """Spec 1.3 steps 1-3: hash of the first 8 KiB, then the header, then the file size."""
    digest = hashlib.md5(head[:HASH_BYTES]).hexdigest()
    if digest in PRETRAINED_HASHES:
        return PRETRAINED_HASHES[digest], "hash"
    if header is not None:
        return HEADER_VERSIONS[header], "header"
    if size < V1_SIZE_LIMIT:
        return ("v1", "v1", False), "size"
    if size < V2_SIZE_LIMIT:
        return ("v2", "v2", False), "size"
    return ("v2", "v3", False), "size"


def _structural_version(path: Path, weights: Mapping[str, Any]) -> str:
    """Spec 1.3's recommended structural rules: v3/v4 family, v2Pro, v2ProPlus, v1 or v2."""
    if any(k.startswith(("cfm.", "wns1.")) for k in weights):
        return "v3/v4"
    if SV_EMB_KEY in weights:
        first = next((weights[k] for k in FIRST_UPSAMPLE_KEYS if k in weights), None)
        plus = first is not None and first.ndim == 3 and first.shape[2] == PROPLUS_FIRST_KERNEL
        return "v2ProPlus" if plus else "v2Pro"
    missing = [k for k in SOVITS_CORE_KEYS if k not in weights]
    if missing:
        raise _fail(path, f"SoVITS checkpoint is missing the key {missing[0]!r}")
    return "v1" if weights[TEXT_EMBEDDING_KEY].shape[0] == SOVITS_V1_SYMBOLS else "v2"


def _pick_v3_v4(upstream_model_version: str, config: Any) -> str:
    if upstream_model_version in ("v3", "v4"):
        return upstream_model_version
    try:
        declared = config["model"]["version"]
    except (KeyError, TypeError):
        declared = None
    return declared if declared in ("v3", "v4") else "v3/v4"


def _check_sovits_keys(
    path: Path, hparams: AttrDict, version: str, state: Mapping[str, torch.Tensor], has_posterior: bool
) -> list[str]:
    """The file must hold the network's keys with the shapes its hparams imply (``enc_q.*`` optional).

    Returns the keys outside the network's parts, which the caller drops."""
    from gsv_triton.networks.sovits import SynthesizerTrn, is_weight_normed

    model_hps = hparams["model"]

    def build():
        return SynthesizerTrn.from_hparams(model_hps, version, include_posterior=has_posterior)

    try:
        ours = _meta_shapes(build)
    except (UserError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _fail(path, f"SoVITS config is unusable ({_short(exc)})") from None
    # Our modules hold folded weights; upstream stores those layers as weight_g [dim0, 1, ..] + weight_v.
    expected: dict[str, tuple[int, ...]] = {}
    for key, shape in ours.items():
        stem = key.removesuffix(".weight")
        if stem != key and is_weight_normed(stem):
            expected[stem + ".weight_g"] = (shape[0],) + (1,) * (len(shape) - 1)
            expected[stem + ".weight_v"] = shape
        else:
            expected[key] = shape
    # Upstream loads SoVITS with strict=False. Keys of a part our network has (a config that disagrees with
    # the weights) are an error; keys of parts it lacks are ignored and reported in ``ignored_keys``.
    ignored = [k for k in state if k not in expected and not k.startswith(SOVITS_PARTS)]
    _compare_keys(path, "SoVITS", expected, {k: v for k, v in state.items() if k not in ignored})
    return ignored


def save_sovits(
    path: Path | str,
    hparams: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    fp16: bool = True,
    header: str | None = None,
    drop_posterior: bool = True,
    info: str = SOVITS_INFO,
) -> Path:
    """Write a SoVITS ``.pth`` like upstream ``process_ckpt.savee`` (spec 1.2/1.3).

    ``state_dict`` uses upstream names (``weight_g``/``weight_v``). ``config`` is pickled as a real
    ``utils.HParams`` (nested for data/train/model). ``header`` ("00".."06") replaces the leading ``PK``;
    ``drop_posterior`` skips the ``enc_q.*`` keys as fine-tunes do (pretrained-like files keep them).
    """
    if header is not None and header not in HEADER_VERSIONS:
        raise ValueError(f"unknown header {header!r}; expected one of {sorted(HEADER_VERSIONS)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    weight: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if drop_posterior and POSTERIOR_PREFIX.rstrip(".") in key:
            continue
        weight[key] = _stored(value, fp16)
    top: OrderedDict[str, Any] = OrderedDict()
    top["weight"] = weight
    top["config"] = _UpstreamHParams(**_plain(hparams))
    top["info"] = info
    buffer = io.BytesIO()
    with _upstream_utils_module():
        torch.save(top, buffer)
    data = buffer.getvalue()
    if header is not None:
        data = header.encode("ascii") + data[2:]
    path.write_bytes(data)
    return path


# ----------------------------------------------------------------------------------------------------
# Speaker verification (v2Pro / v2ProPlus)


@dataclass
class SvCheckpoint:
    """The ERes2NetV2 speaker-verification weights (float32, upstream key names)."""

    state_dict: dict[str, torch.Tensor]
    path: Path


def load_sv(path: Path | str) -> SvCheckpoint:
    """Load ``pretrained_eres2netv2w24s4ep4.ckpt``; anything else raises a one-line UserError naming the file."""
    from gsv_triton.networks.eres2net import ERes2NetV2

    path = Path(path)
    header, _ = _read_header(path)
    if header is not None:
        raise _fail(path, f"has a SoVITS version header {header!r}; expected the speaker-verification "
                          f"file {SV_FILE_NAME}")  # fmt: skip
    top = _load_container(path, header)
    if not isinstance(top, Mapping) or not top:
        kind = type(top).__name__
        raise _fail(path, f"not a speaker-verification checkpoint (top level is {kind}, not a state dict)")
    if "weight" in top and isinstance(top["weight"], Mapping):
        raise _fail(path, f"looks like a GPT or SoVITS file, expected the speaker-verification file {SV_FILE_NAME}")
    bad = [k for k, v in top.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise _fail(path, f"not a speaker-verification checkpoint (entry {bad[0]!r} is not a tensor)")
    state = _to_float32(top)
    _compare_keys(path, "speaker-verification (ERes2NetV2)", _meta_shapes(ERes2NetV2), state)
    return SvCheckpoint(state_dict=state, path=path)


def save_sv(path: Path | str, state_dict: Mapping[str, torch.Tensor]) -> Path:
    """Write the SV weights as upstream's file is: ``torch.save`` of a plain state dict (fp32)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(OrderedDict((k, _stored(v, fp16=False)) for k, v in state_dict.items()), str(path))
    return path
