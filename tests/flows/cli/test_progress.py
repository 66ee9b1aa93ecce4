import io

from flows.cli.progress import ProgressLine, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_by_hand():
    assert progress_bar(0.5, width=10) == "[#####.....]  50%"
    assert progress_bar(0.0, width=4) == "[....]   0%"
    assert progress_bar(1.0, width=4) == "[####] 100%"
    assert progress_bar(1.7, width=4) == "[####] 100%" and progress_bar(-1, width=4) == "[....]   0%"
    assert progress_bar(0.333, width=3) == "[#..]  33%"


def test_on_a_terminal_one_line_is_redrawn_in_place_and_ended_once():
    out = Terminal()
    line = ProgressLine(out, width=4)
    line.update(0.25, "step 1 loss 0.5")
    line.update(0.5, "step 2")
    line.close()
    line.close()  # a second close writes nothing
    assert out.getvalue() == "\r[#...]  25% step 1 loss 0.5" + "\r[##..]  50% step 2" + " " * 9 + "\n"


def test_elsewhere_each_update_is_a_plain_line():
    out = io.StringIO()
    line = ProgressLine(out, width=4)
    line.update(0.25, "step 1")
    line.update(0.5, "step 2")
    line.close()
    assert out.getvalue() == "step 1\nstep 2\n"


def test_stages_show_the_share_done_before_each_and_end_at_100_percent():
    from flows.cli.progress import StageLine

    out = Terminal()
    stages = StageLine("inr x", ("a", "b", "c", "d"), out)
    stages.show("a", "one")
    stages.show("c", "three")
    stages.done("all")
    stages.close()  # nothing more
    bar = "[" + "#" * 12 + "." * 12 + "]"  # 24 cells, the ProgressLine default
    assert out.getvalue() == ("\r[" + "." * 24 + "]   0% inr x: one" + "\r" + bar + "  50% inr x: three"
                              + "\r[" + "#" * 24 + "] 100% inr x: all" + " " * 2 + "\n")
    quiet = io.StringIO()
    stages = StageLine("inr x", ("a",), quiet, quiet=True)
    stages.show("a", "one")
    stages.done("all")
    assert quiet.getvalue() == ""
