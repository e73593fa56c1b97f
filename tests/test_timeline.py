import pytest

from helios.errors import BadInput
from helios.timeline import PromptTimeline, TimelineEntry


def two_prompts(crossfade=2):
    return PromptTimeline((TimelineEntry(0, "a calm sea"), TimelineEntry(2, "a stormy sea")), crossfade)


def test_crossfade_weights_follow_the_schedule():
    t = two_prompts(crossfade=2)
    assert t.mix(0) == t.mix(1) == (("a calm sea", 1.0),)
    assert dict(t.mix(2)) == pytest.approx({"a calm sea": 2 / 3, "a stormy sea": 1 / 3})
    assert dict(t.mix(3)) == pytest.approx({"a calm sea": 1 / 3, "a stormy sea": 2 / 3})
    assert t.mix(4) == t.mix(9) == (("a stormy sea", 1.0),)


def test_no_crossfade_switches_at_the_boundary():
    t = two_prompts(crossfade=0)
    assert t.mix(1) == (("a calm sea", 1.0),)
    assert t.mix(2) == (("a stormy sea", 1.0),)


def test_overlapping_changes_blend_from_what_was_showing():
    t = PromptTimeline((TimelineEntry(0, "A"), TimelineEntry(1, "B"), TimelineEntry(2, "C")), crossfade=1)
    assert dict(t.mix(1)) == pytest.approx({"A": 0.5, "B": 0.5})
    assert dict(t.mix(2)) == pytest.approx({"A": 0.25, "B": 0.25, "C": 0.5})
    assert dict(t.mix(3)) == pytest.approx({"C": 1.0})


def test_seconds_snap_to_segment_boundaries():
    t = PromptTimeline((TimelineEntry(0, "A", "second"), TimelineEntry(2.75, "B", "second")), crossfade=0)
    assert t.entries[1].segment == 2
    assert t.mix(2) == (("B", 1.0),)


def test_json_and_csv_round_trip():
    t = two_prompts(crossfade=3)
    assert PromptTimeline.from_json(t.to_json()) == t
    csv_text = t.to_csv()
    assert csv_text.splitlines()[0] == "id,prompt_index,prompt"
    assert PromptTimeline.from_csv(csv_text, crossfade=3) == t


@pytest.mark.parametrize(
    "timeline, num_segments, message",
    [
        (PromptTimeline(()), 4, "timeline is empty"),
        (PromptTimeline((TimelineEntry(0, "  "),)), 4, "empty prompt"),
        (PromptTimeline((TimelineEntry(1, "A"),)), 4, "must start at 0"),
        (PromptTimeline((TimelineEntry(0, "A"), TimelineEntry(3, "B"), TimelineEntry(2, "C"))), 4, "order rows"),
        (PromptTimeline((TimelineEntry(0, "A"), TimelineEntry(5, "B"))), 4, "only 4 segments"),
        (PromptTimeline((TimelineEntry(0, "A"),), crossfade=-1), 4, "Crossfade"),
        (PromptTimeline((TimelineEntry(0, "A", "minute"),)), 4, "unit"),
    ],
)
def test_bad_timelines_are_named(timeline, num_segments, message):
    with pytest.raises(BadInput, match=message):
        timeline.check(num_segments)


@pytest.mark.parametrize("text", ["not json", '{"entries": [{"prompt": "x"}]}', "[1, 2]", '{"entries": 5}'])
def test_malformed_json(text):
    with pytest.raises(BadInput, match="timeline JSON is malformed"):
        PromptTimeline.from_json(text)


@pytest.mark.parametrize("text", ["a,b\n1,2", "id,prompt_index,prompt\n0,x,hello", ""])
def test_malformed_csv(text):
    with pytest.raises(BadInput, match="timeline CSV is malformed"):
        PromptTimeline.from_csv(text)


def test_csv_with_two_videos_is_refused():
    with pytest.raises(BadInput, match="2 video ids"):
        PromptTimeline.from_csv("id,prompt_index,prompt\n0,0,a\n1,1,b")
