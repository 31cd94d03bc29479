"""The web page's one API route: ``GET /ui/config.json``, the languages, defaults and limits the page's form
shows, read from the same settings and tables the routes use (the page repeats none of them). The page's files
are mounted by ``gateway.app`` (:class:`gateway.page.PageFiles`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from gsv_triton.settings import OUTPUT_SAMPLE_RATE, SamplingDefaults, Settings
from gsv_triton.text.languages import LANGUAGES_V2

from .. import __version__
from ..dependencies import get_settings
from ..models import LanguageOption, PageConfig
from ..page import PAGE_CONFIG_PATH

router = APIRouter(tags=["web page"])

# The page's names of the language codes (LANGUAGES_V2 holds every code; v1 models take a subset and answer
# 400 naming the field for the others).
LANGUAGE_LABELS = {
    "zh": "Chinese (with English)",
    "all_zh": "Chinese only",
    "en": "English",
    "ja": "Japanese (with English)",
    "all_ja": "Japanese only",
    "ko": "Korean (with English)",
    "all_ko": "Korean only",
    "yue": "Cantonese (with English)",
    "all_yue": "Cantonese only",
    "auto": "Multilingual (detected per piece)",
    "auto_yue": "Multilingual with Cantonese",
}
DEFAULT_LANGUAGE = "zh"
# Without the gateway's -cp a text splits at newlines only (one streamed piece); the page's form splits after
# sentence ends, so its audio starts with the first sentence.
SENTENCE_ENDS = "，。！？,.!?"


def language_options() -> list[LanguageOption]:
    """Every language code the server supports, labelled, in LANGUAGE_LABELS' order."""
    return [LanguageOption(code=code, label=LANGUAGE_LABELS[code]) for code in LANGUAGE_LABELS if code in LANGUAGES_V2]


@router.get(PAGE_CONFIG_PATH, response_model=PageConfig)
async def page_config(settings: Annotated[Settings, Depends(get_settings)]) -> PageConfig:
    """The page's languages, sampling defaults and limits, and whether API calls need a key."""
    defaults = SamplingDefaults()
    limits = settings.limits
    return PageConfig(
        gateway_version=__version__,
        api_keys_required=bool(settings.api_key_set),
        default_model=settings.default_model,
        languages=language_options(),
        default_language=DEFAULT_LANGUAGE,
        sampling={"top_k": defaults.top_k, "top_p": defaults.top_p, "temperature": defaults.temperature,
                  "speed": defaults.speed},  # fmt: skip
        cut_punc=settings.default_cut_punc or SENTENCE_ENDS,
        sample_rate=OUTPUT_SAMPLE_RATE,
        min_reference_seconds=limits.min_reference_seconds,
        max_reference_seconds=limits.max_reference_seconds,
        max_text_chars=limits.max_text_chars,
        max_upload_bytes=limits.max_upload_bytes,
    )
