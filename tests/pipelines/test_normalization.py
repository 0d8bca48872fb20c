"""Normalization: what it maps, that it is idempotent, and that Python and every tokenizer agree."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.normalization import normalization_rules, normalize

# Characters real corpora carry that a reader does not see.
ODD = ["\u00a0", "\u200b", "\ufeff", "\u200d", "\u2060", "\u00ad", "\x07", "\x1b", "\x85", "\t", "\u3000",
       "\u2028", "\u0301", "\ufffd"]


@pytest.mark.parametrize("text, expected", [
    ("A dog\u00a0runs", "A dog runs"),            # Unicode spaces are spaces
    ("ideo\u3000graphic\u2028line", "ideo graphic line"),
    ("tab\there\r\nand\x85next", "tab here and next"),
    ("zero\u200bwidth", "zerowidth"),             # format characters are dropped
    ("bom\ufeffin the middle", "bomin the middle"),
    ("soft\u00adhyphen, \u200ejoin\u200d\u2060", "softhyphen, join"),
    ("bell\x07 and esc\x1b", "bell and esc"),     # control characters are dropped
    ("Cafe\u0301 CAFÉ", "Café CAFÉ"),             # composed; accents and case kept
    ("ﬁne Ｆｕｌｌ ｶﾀｶﾅ", "fine Full カタカナ"),     # compatibility forms (NFKC)
    ("  many   spaces  ", "many spaces"),
    ("broken \ufffd byte", "broken \ufffd byte"),  # the replacement character stays (it reads as [UNK])
    ("日本語のテキスト。", "日本語のテキスト。"),
    ("", ""),
])
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_rules_cover_every_format_and_control_character():
    rules = dict(normalization_rules())
    assert rules["\u200b"] == rules["\ufeff"] == rules["\u00ad"] == rules["\x07"] == ""
    assert rules["\u00a0"] == rules["\t"] == rules["\n"] == " "
    assert "\ufffd" not in rules


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.one_of(st.characters(), st.sampled_from(ODD))))
def test_normalize_is_idempotent_and_leaves_no_odd_space(text):
    normalized = normalize(text)
    assert normalize(normalized) == normalized
    assert normalized == normalized.strip(" ") and "  " not in normalized
    assert not any(character in normalized for character in ODD[:11])
