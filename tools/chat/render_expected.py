#!/usr/bin/env python3
"""Renders fixed conversations with Python Jinja2 exactly as Hugging Face transformers' apply_chat_template
(tokenize=False) does, and writes the texts ChatTemplateTest and ChatCliTest compare Tandem's ChatTemplate with.

The environment is transformers' (utils/chat_template_utils.py, _compile_jinja_template):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]),
the `tojson` filter (json.dumps, ensure_ascii=False), the globals `raise_exception` and `strftime_now`;
variables messages, add_generation_prompt, bos_token, eos_token (`tools` left undefined).

Usage (from the repository root):  python3 tools/chat/render_expected.py
Writes transformer/src/test/resources/chat/conversations.json and chat/<model>/expected-<conversation>.txt.
Never written by the code under test.
"""
import json
import os
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHAT = os.path.join(ROOT, "transformer", "src", "test", "resources", "chat")
MODELS = ["qwen3", "llama3"]

# name -> (messages, add_generation_prompt)
CONVERSATIONS = {
    "a-system-think": ([
        {"role": "system", "content": "You are a terse assistant. Réponds en français si besoin."},
        {"role": "user", "content": "  Who wrote « Hamlet »?  "},
        {"role": "assistant", "content": "<think>\nThe user asks about Hamlet. Shakespeare.\n</think>\n\nWilliam Shakespeare — in 1600."},
        {"role": "user", "content": "And Macbeth? 日本語で答えて。\n"},
    ], True),
    "b-single-user": ([
        {"role": "user", "content": " Straße, naïve café: ünïcödé ✓ "},
    ], False),
    "c-multi-turn": ([
        {"role": "user", "content": "Hi there!"},
        {"role": "assistant", "content": "  Hello! How can I help?  "},
        {"role": "user", "content": "Count to three:\n1, 2, 3… ok?"},
        {"role": "assistant", "content": "\n1, 2, 3.\n"},
        {"role": "user", "content": "Thanks 🙂"},
    ], True),
    "d-think-last": ([
        {"role": "user", "content": "Is 7 prime?"},
        {"role": "assistant", "content": "<think>\n\n7 has no divisors but 1 and 7.\n\n</think>\n\n\nYes, 7 is prime."},
    ], False),
    # the conversation of ChatCliTest: tandem generate --chat --prompt "Who are you?"
    "cli-who-are-you": ([
        {"role": "user", "content": "Who are you?"},
    ], True),
}


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(format):
    return datetime.now().strftime(format)


def environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                       extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def token(value):
    if isinstance(value, dict):
        return value.get("content")
    return value


def main():
    env = environment()
    with open(os.path.join(CHAT, "conversations.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump({name: {"messages": m, "add_generation_prompt": g} for name, (m, g) in CONVERSATIONS.items()},
                  f, ensure_ascii=False, indent=2)
        f.write("\n")
    for model in MODELS:
        with open(os.path.join(CHAT, model, "tokenizer_config.json"), encoding="utf-8") as f:
            config = json.load(f)
        template = env.from_string(config["chat_template"])
        bos, eos = token(config.get("bos_token")), token(config.get("eos_token"))
        for name, (messages, generation_prompt) in CONVERSATIONS.items():
            text = template.render(messages=messages, add_generation_prompt=generation_prompt,
                                   bos_token=bos if bos is not None else "", eos_token=eos if eos is not None else "")
            with open(os.path.join(CHAT, model, "expected-" + name + ".txt"), "w", encoding="utf-8", newline="") as f:
                f.write(text)
    print("jinja2", jinja2.__version__, "->", CHAT)


if __name__ == "__main__":
    main()
