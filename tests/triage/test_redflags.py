"""Red-flag matching: pure unit tests, no Redis."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from triage.models import Urgency
from triage.redflags import DEFAULT_RED_FLAGS, RedFlagHit, RedFlagMatcher, normalise


def matcher(*phrases: str, urgency: Urgency = Urgency.EMERGENCY) -> RedFlagMatcher:
    return RedFlagMatcher(dict.fromkeys(phrases, urgency))


def phrases_found(m: RedFlagMatcher, text: str) -> list[str]:
    return [hit.phrase for hit in m.match(text)]


# --- normalisation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("I have CHEST PAIN.", "i have chest pain"),
        ("Crème Brûlée", "creme brulee"),
        ("Straße", "strasse"),
        ("ＣＨＥＳＴ\u3000ＰＡＩＮ", "chest pain"),  # full-width letters and ideographic space
        ("ｶﾀｶﾅ", "カタカナ"),  # half-width katakana
        ("can’t  breathe!!!", "can't breathe"),
        ("self–harm / self_harm", "self harm self harm"),
        ("'quoted'", "quoted"),  # an apostrophe survives only inside a word
        ("  \t\n ", ""),
    ],
)
def test_normalise_folds_case_accents_width_apostrophes_and_punctuation(
    text: str, folded: str
) -> None:
    assert normalise(text) == folded


@given(st.text())
def test_normalise_is_idempotent(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once


# --- case, accents, width, apostrophes --------------------------------------------------------


def test_match_ignores_case() -> None:
    assert phrases_found(matcher("chest pain"), "I have CHEST PAIN.") == ["chest pain"]
    assert phrases_found(matcher("CHEST Pain"), "chest pain since monday") == ["CHEST Pain"]


def test_accented_phrase_matches_text_with_or_without_accents() -> None:
    m = matcher("café noir")
    assert phrases_found(m, "J'ai bu un CAFE NOIR") == ["café noir"]
    assert phrases_found(m, "un Café Noir") == ["café noir"]
    assert phrases_found(m, "un cafe\u0301 noir") == ["café noir"]  # accent as a combining mark
    assert phrases_found(m, "un cafè noir") == ["café noir"]  # the wrong accent is still no accent


def test_unaccented_phrase_matches_accented_text() -> None:
    assert phrases_found(matcher("hopital"), "je suis à l'hôpital") == ["hopital"]


@pytest.mark.parametrize("apostrophe", ["'", "’", "‘", "ʼ", "´", "`", "＇"])
def test_apostrophe_variants_are_one_apostrophe(apostrophe: str) -> None:
    m = matcher("can't breathe")
    assert phrases_found(m, f"I can{apostrophe}t breathe") == ["can't breathe"]
    typographic = matcher("can’t breathe")
    assert phrases_found(typographic, f"I CAN{apostrophe}T BREATHE") == ["can’t breathe"]


def test_apostrophe_is_not_dropped_so_cant_needs_its_own_phrase() -> None:
    assert phrases_found(matcher("can't breathe"), "i cant breathe") == []
    assert phrases_found(matcher("can't breathe"), "i can t breathe") == []


def test_full_width_text_matches() -> None:
    assert phrases_found(matcher("chest pain"), "ＣＨＥＳＴ　ＰＡＩＮ") == ["chest pain"]
    assert phrases_found(matcher("胸痛"), "我胸痛") == ["胸痛"]


def test_punctuation_between_words_counts_as_a_space() -> None:
    m = matcher("self-harm")
    assert phrases_found(m, "thoughts of self harm") == ["self-harm"]
    assert phrases_found(m, "SELF—HARM.") == ["self-harm"]
    assert phrases_found(m, "selfharm") == []


# --- word boundaries and substrings -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["painting the fence", "a painful knee", "spain", "chestpain", "chest painkiller"],
)
def test_spaced_phrase_never_matches_inside_a_word(text: str) -> None:
    assert phrases_found(matcher("pain", "chest pain"), text) == []


@pytest.mark.parametrize(
    "text",
    ["pain", "pain!", "(pain)", "much pain here", "the pain's bad", "我pain了", "pain\n"],
)
def test_spaced_phrase_matches_between_boundaries(text: str) -> None:
    assert phrases_found(matcher("pain"), text) == ["pain"]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("chest pains", True),
        ("CHEST PAINS!", True),
        ("two rashes", True),
        ("chest paines", True),  # the rule is mechanical: "es" is always allowed
        ("chest painss", False),
        ("chest painted", False),
    ],
)
def test_english_plural_suffix_is_allowed(text: str, found: bool) -> None:
    m = matcher("chest pain", "rash")
    assert bool(m.match(text)) is found


def test_plural_suffix_is_only_for_phrases_ending_in_an_ascii_letter() -> None:
    assert phrases_found(matcher("грудь"), "грудьs") == []
    assert phrases_found(matcher("covid 19"), "covid 19s") == []


def test_cyrillic_phrase_matches_on_word_boundaries() -> None:
    m = matcher("боль в груди")
    assert phrases_found(m, "Сильная БОЛЬ В ГРУДИ.") == ["боль в груди"]
    assert phrases_found(m, "боль в грудине") == []


@pytest.mark.parametrize(
    "text", ["我胸痛三天了", "胸痛", "昨晚开始胸痛。", "胸痛胸痛", "I have 胸痛 since yesterday"]
)
def test_chinese_phrase_matches_as_substring(text: str) -> None:
    assert phrases_found(matcher("胸痛"), text) == ["胸痛"]


@pytest.mark.parametrize("text", ["胸痛3天", "covid后胸痛", "COVID胸痛", "高烧39度", "x高烧"])
def test_chinese_phrase_matches_against_latin_letters_and_digits(text: str) -> None:
    assert len(matcher("胸痛", "高烧").match(text)) == 1


def test_chinese_phrase_needs_its_characters_in_order_and_adjacent() -> None:
    m = matcher("胸痛")
    assert phrases_found(m, "痛胸") == []
    assert phrases_found(m, "胸口痛") == []
    assert phrases_found(m, "胸 痛") == []


def test_hangul_phrase_matches_with_a_particle_attached() -> None:
    assert phrases_found(matcher("가슴 통증"), "가슴 통증이 있어요") == ["가슴 통증"]


def test_one_syllable_never_matches_part_of_another() -> None:
    # 가 (ga) is the first two jamo of 각 (gak); matching is on recomposed syllables.
    assert phrases_found(matcher("가"), "각") == []


def test_spaced_phrase_next_to_chinese_text_matches() -> None:
    assert phrases_found(matcher("chest pain"), "我有chest pain三天") == ["chest pain"]


@given(
    phrase=st.text(min_size=1).filter(lambda p: normalise(p) != ""),
    before=st.text(),
    after=st.text(),
)
def test_a_phrase_always_matches_itself_between_spaces(
    phrase: str, before: str, after: str
) -> None:
    m = matcher(phrase)
    assert phrases_found(m, f"{before} {phrase} {after}") == [phrase]


# --- several hits -----------------------------------------------------------------------------


def test_hits_are_ordered_by_urgency_then_phrase() -> None:
    m = RedFlagMatcher(
        {
            "high fever": Urgency.URGENT,
            "dizzy": Urgency.PRIORITY,
            "胸痛": Urgency.EMERGENCY,
            "chest pain": Urgency.EMERGENCY,
            "rash": Urgency.URGENT,
        }
    )
    hits = m.match("Rash, dizzy, high fever, 胸痛 and chest pain")
    assert hits == (
        RedFlagHit("chest pain", Urgency.EMERGENCY),
        RedFlagHit("胸痛", Urgency.EMERGENCY),
        RedFlagHit("high fever", Urgency.URGENT),
        RedFlagHit("rash", Urgency.URGENT),
        RedFlagHit("dizzy", Urgency.PRIORITY),
    )


def test_a_phrase_found_twice_is_one_hit() -> None:
    assert len(matcher("pain").match("pain, pain and more pain")) == 1


def test_nothing_found_is_empty() -> None:
    m = RedFlagMatcher(DEFAULT_RED_FLAGS["general"])
    assert m.match("a mild cough for two days") == ()
    assert m.highest("a mild cough for two days") is None


def test_highest_returns_the_most_urgent_hit() -> None:
    m = RedFlagMatcher({"high fever": Urgency.URGENT, "seizure": Urgency.EMERGENCY})
    assert m.highest("high fever since Monday") == RedFlagHit("high fever", Urgency.URGENT)
    assert m.highest("High fever, then a seizure") == RedFlagHit("seizure", Urgency.EMERGENCY)


def test_highest_breaks_ties_by_phrase() -> None:
    m = matcher("tachycardia", "chest pain")
    assert m.highest("chest pain and tachycardia") == RedFlagHit("chest pain", Urgency.EMERGENCY)


def test_hit_reports_the_phrase_as_configured() -> None:
    hit = matcher("Can’t Breathe").highest("i can't breathe")
    assert hit is not None
    assert hit.phrase == "Can’t Breathe"


def test_hit_is_frozen() -> None:
    hit = RedFlagHit("chest pain", Urgency.EMERGENCY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit.urgency = Urgency.ROUTINE  # type: ignore[misc]


# --- construction -----------------------------------------------------------------------------


def test_phrases_that_fold_to_the_same_text_are_refused() -> None:
    with pytest.raises(ValueError, match="same once"):
        RedFlagMatcher({"Chest pain": Urgency.EMERGENCY, "chest  PAIN!": Urgency.URGENT})


@pytest.mark.parametrize("phrase", ["", "   ", "!!!", "\u0301"])
def test_phrase_without_letters_is_refused(phrase: str) -> None:
    with pytest.raises(ValueError, match="no letters or digits"):
        matcher(phrase)


def test_phrase_raising_to_routine_is_refused() -> None:
    with pytest.raises(ValueError, match="routine"):
        matcher("cough", urgency=Urgency.ROUTINE)


def test_flags_are_read_only_and_as_configured() -> None:
    config = {"Chest Pain": Urgency.EMERGENCY}
    m = RedFlagMatcher(config)
    config["high fever"] = Urgency.URGENT
    assert dict(m.flags) == {"Chest Pain": Urgency.EMERGENCY}
    with pytest.raises(TypeError):
        m.flags["x"] = Urgency.URGENT  # type: ignore[index]


# --- shipped defaults -------------------------------------------------------------------------


def test_defaults_cover_the_three_department_kinds() -> None:
    assert set(DEFAULT_RED_FLAGS) == {"general", "paediatrics", "psych"}


@pytest.mark.parametrize("kind", sorted(DEFAULT_RED_FLAGS))
def test_defaults_build_a_matcher_and_each_phrase_finds_itself(kind: str) -> None:
    m = RedFlagMatcher(DEFAULT_RED_FLAGS[kind])
    for phrase, urgency in DEFAULT_RED_FLAGS[kind].items():
        assert RedFlagHit(phrase, urgency) in m.match(f"patient says: {phrase}.")


@pytest.mark.parametrize("kind", sorted(DEFAULT_RED_FLAGS))
def test_defaults_ship_english_and_simplified_chinese(kind: str) -> None:
    phrases = DEFAULT_RED_FLAGS[kind]
    assert any(p.isascii() for p in phrases)
    assert any("\u4e00" <= ch <= "\u9fff" for p in phrases for ch in p)


@pytest.mark.parametrize(
    ("kind", "text", "phrase", "urgency"),
    [
        ("general", "Sudden CHEST PAIN radiating to my arm", "chest pain", Urgency.EMERGENCY),
        ("general", "我胸痛三天了", "胸痛", Urgency.EMERGENCY),
        ("general", "I can’t breathe properly", "can't breathe", Urgency.EMERGENCY),
        ("general", "i cant breathe", "cant breathe", Urgency.EMERGENCY),
        ("general", "孩子呼吸困难", "呼吸困难", Urgency.EMERGENCY),
        ("general", "Her face drooping on one side", "face drooping", Urgency.EMERGENCY),
        ("general", "他突然口角歪斜", "口角歪斜", Urgency.EMERGENCY),
        ("general", "产后大出血", "大出血", Urgency.EMERGENCY),
        ("general", "High fever for three days", "high fever", Urgency.URGENT),
        ("general", "一直发高烧", "高烧", Urgency.URGENT),
        ("paediatrics", "my baby is not breathing", "not breathing", Urgency.EMERGENCY),
        ("paediatrics", "孩子不呼吸了", "不呼吸", Urgency.EMERGENCY),
        ("paediatrics", "had a seizure an hour ago", "seizure", Urgency.EMERGENCY),
        ("paediatrics", "宝宝抽搐", "抽搐", Urgency.EMERGENCY),
        ("paediatrics", "signs of dehydration", "dehydration", Urgency.URGENT),
        ("paediatrics", "腹泻脱水", "脱水", Urgency.URGENT),
        ("psych", "having suicidal thoughts", "suicidal", Urgency.EMERGENCY),
        ("psych", "我想自杀", "自杀", Urgency.EMERGENCY),
        ("psych", "I want to kill myself", "kill myself", Urgency.EMERGENCY),
        ("psych", "真的不想活了", "不想活了", Urgency.EMERGENCY),
        ("psych", "history of self-harm", "self-harm", Urgency.URGENT),
        ("psych", "有自残行为", "自残", Urgency.URGENT),
    ],
)
def test_defaults_raise_typical_intakes(
    kind: str, text: str, phrase: str, urgency: Urgency
) -> None:
    assert RedFlagMatcher(DEFAULT_RED_FLAGS[kind]).highest(text) == RedFlagHit(phrase, urgency)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("general", "I like painting and have a sore throat"),
        ("general", "轻微咳嗽，有点发烧"),  # a mild cough and a slight fever
        ("paediatrics", "breathing normally, a runny nose"),
        ("psych", "trouble sleeping, low mood"),
    ],
)
def test_defaults_stay_silent_on_ordinary_intakes(kind: str, text: str) -> None:
    assert RedFlagMatcher(DEFAULT_RED_FLAGS[kind]).match(text) == ()
