#!/usr/bin/python3
"""Writes rust_cases.json: what the Hugging Face tokenizers crate itself (the Rust code, through its
Python package) makes of all-MiniLM-L6-v2's tokenizer.json on edge cases that golden.json leaves out.
Run from the repository root:

    pip install tokenizers==0.23.2
    M=transformer/src/test/resources/tokenizers/minilm
    python3 tools/goldens/make_minilm_cases.py $M/tokenizer.json.gz > $M/rust_cases.json

The file's padding and truncation are switched off, as Tandem does not apply them.
"""
import gzip
import json
import sys

from tokenizers import Tokenizer, __version__

TEXTS = [
    # clean_text: NUL, SOH, DEL, U+FFFD, zero-width space and BOM (Cf), private use (Co) are dropped
    "a\u0000b\u0001c\u007fd\ufffde\u200bf\ufeffg\ue000h",
    # controls that are also White_Space (VT, FF, NEL) are dropped, not turned into spaces
    "a\u000bb\u000cc\u0085d\u001ce",
    # other White_Space becomes a space and separates words
    "a\u00a0b\u2003c\u3000d\u2028e\r\nf\tg",
    # strip_accents (NFD, drop Mn) then lowercase
    "\u00c5ngstr\u00f6m Cr\u00e8me Br\u00fbl\u00e9e NA\u00cfVE \u00c7a",
    "cafe\u0301 Hello\u0301 \u0301 x\u0301\u0302y",
    "\u0130stanbul \u0131 \u03a3\u0391\u03a3 \u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3 \u01c4 STRASSE Stra\u00dfe \u1e9e",
    "\ufb01ne \u2460 \uff21\uff22\uff23 \u216b x\u00b2",
    # Chinese characters become words of their own, in every block BERT lists
    "\u6211\u7231\u5317\u4eac\u5929\u5b89\u95e8",
    "\U00020000\U00020001 \uf900 \u3400 \U0002b820 \u9fa5x",
    "\u6771\u4eac\u30bf\u30ef\u30fc\u306b\u884c\u304f",
    "\uc548\ub155\ud558\uc138\uc694",
    "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35 \u0645\u064e\u0631\u0652\u062d\u064e\u0628\u064b\u0627 \u0928\u092e\u0938\u094d\u0924\u0947",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440!",
    # punctuation: Unicode P* and the ASCII symbols
    "\u201cquoted\u201d \u00abguillemets\u00bb \u2018single\u2019 \u2014 dash \u2013 en\u2026 \u00bfqu\u00e9? \u00a1s\u00ed!",
    "$100 ^caret `tick` |pipe| ~tilde a_b a\u203fb +=<>",
    "\u20ac5 \u00a33 \u00a57 \u00a9\u00ae\u2122 \u00b0C \u00b1 \u00a7 \u00b6",
    "3,000,000.50 1/2 \u00bd 10% e-mail e.g. U.S.A. don't can't won't",
    "!!!???...,,, ##ing ## #hash",
    # WordPiece: greedy longest match first; a word longer than 100 characters is [UNK]
    "unaffable tokenization huggingface transformers supercalifragilisticexpialidocious",
    "a" * 100,
    "a" * 101,
    "\u00e9" * 101,
    "abc\u2603def snow\u2603",
    "I \u2764\ufe0f NY \U0001f600x",
    # added tokens written in the text are matched as themselves, in raw text only
    "[CLS] hello [SEP] [MASK] world [UNK] [PAD]",
    "hello[MASK]world [mask] [ MASK ]",
    "user@example.com 127.0.0.1:8080",
]

PAIRS = [
    ("How old are you?", "I am 6 years old."),
    ("", "b"),
]

# ids chosen by hand, to decode: "##" pieces first, a lone apostrophe, punctuation, specials in between
DECODE_IDS = [
    [2015, 7592, 1012, 1005, 1055, 2079, 2025, 29625, 1010, 102, 2088],
    [101, 2009, 1005, 1055, 999, 1029, 102],
    [2075, 2075],
]


def main(path):
    with gzip.open(path, "rt", encoding="utf-8") as f:
        t = Tokenizer.from_str(f.read())
    t.no_padding()
    t.no_truncation()
    cases = []
    for text in TEXTS:
        e = t.encode(text)
        assert all(x == 0 for x in e.type_ids)
        cases.append({"text": text, "ids": e.ids,
                      "decoded": t.decode(e.ids, skip_special_tokens=False),
                      "decodedSkippingSpecial": t.decode(e.ids, skip_special_tokens=True)})
    pairs = []
    for first, second in PAIRS:
        e = t.encode(first, second)
        pairs.append({"first": first, "second": second, "ids": e.ids, "typeIds": e.type_ids})
    decodes = [{"ids": ids, "decoded": t.decode(ids, skip_special_tokens=False),
                "decodedSkippingSpecial": t.decode(ids, skip_special_tokens=True)} for ids in DECODE_IDS]
    json.dump({"source": "Hugging Face tokenizers " + __version__ + " (Rust, through its Python package)",
               "cases": cases, "pairs": pairs, "decodes": decodes}, sys.stdout, ensure_ascii=False, indent=1)
    print()


if __name__ == "__main__":
    main(sys.argv[1])
