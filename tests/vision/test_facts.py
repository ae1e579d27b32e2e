from __future__ import annotations

from vision.backends.facts import describe_image

from devkit.screens import image_bytes_of, order_screenshot, photo_like_image


def test_order_page_is_a_white_and_red_portrait() -> None:
    facts = describe_image(image_bytes_of(order_screenshot()))
    assert (facts.width, facts.height, facts.orientation) == (750, 1000, "portrait")
    assert [c.name_en for c in facts.colours][:2] == ["white", "red"]


def test_photo_like_image_is_a_green_and_blue_landscape() -> None:
    facts = describe_image(image_bytes_of(photo_like_image()))
    assert facts.orientation == "landscape"
    names = {c.name_en for c in facts.colours}
    assert "green" in names and names & {"blue", "sky blue"}
    assert abs(sum(c.share for c in facts.colours) - 1.0) < 0.01
