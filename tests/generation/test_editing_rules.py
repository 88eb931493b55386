"""The pure rules of edits: what each operation needs, and the square canvas a model edits."""

from __future__ import annotations

import pytest
from PIL import Image

from foundry.errors import InvalidInput
from foundry.generation.editing import (
    EditPlan,
    Padding,
    changed_share,
    check_mask_size,
    edit_canvas,
    keep_unmasked,
    plan_edit,
)


@pytest.mark.parametrize(("operation", "strength", "padding", "has_mask", "field"), [
    ("sharpen", None, Padding(), False, "operation"),
    ("image_to_image", 0.0, Padding(), False, "strength"),
    ("image_to_image", 1.5, Padding(), False, "strength"),
    ("inpaint", None, Padding(), False, "mask"),
    ("image_to_image", None, Padding(), True, "mask"),
    ("outpaint", None, Padding(), False, "pad_left"),
    ("image_to_image", None, Padding(top=8), False, "pad_left"),
    ("outpaint", None, Padding(right=-1), False, "pad_right"),
    ("outpaint", None, Padding(bottom=10_000), False, "pad_bottom"),
])
def test_an_edit_that_cannot_be_done_is_refused_naming_the_field(operation, strength, padding, has_mask, field):
    with pytest.raises(InvalidInput) as refused:
        plan_edit(operation=operation, strength=strength, padding=padding, has_mask=has_mask)
    assert refused.value.code == "validation_error" and refused.value.details["fields"][0]["field"] == field


def test_defaults_fill_in_per_operation():
    assert plan_edit(operation="image_to_image", strength=None, padding=Padding(), has_mask=False).strength == 0.6
    assert plan_edit(operation="inpaint", strength=None, padding=Padding(), has_mask=True).strength == 1.0
    plan = plan_edit(operation="outpaint", strength=0.8, padding=Padding(left=4), has_mask=False)
    assert EditPlan.from_dict(plan.as_dict()) == plan and plan.paints
    with pytest.raises(InvalidInput):
        check_mask_size((64, 64), (64, 48))


def test_a_wide_input_is_letterboxed_and_the_letterbox_is_painted():
    wide = Image.new("RGB", (64, 32), (255, 0, 0))
    canvas, mask = edit_canvas(EditPlan("outpaint", 1.0, Padding(left=0, right=64)), wide, None, 32)
    # 128 x 32 padded -> 32 x 8 centred: rows 12..19 hold the picture, its left half red, the rest white
    assert canvas.size == mask.size == (32, 32)
    assert canvas.getpixel((4, 15)) == (255, 0, 0) and canvas.getpixel((4, 2)) == (255, 255, 255)
    assert mask.getpixel((4, 15)) == 0  # the input: kept
    assert mask.getpixel((28, 15)) == 255 and mask.getpixel((4, 2)) == 255  # new margin and letterbox: painted
    plain, no_mask = edit_canvas(EditPlan("image_to_image", 0.5), wide, None, 32)
    assert no_mask is None and plain.getpixel((16, 15)) == (255, 0, 0)


def test_masks_are_binary_and_the_kept_region_is_the_inputs_own():
    image = Image.new("RGB", (32, 32), (0, 128, 0))
    soft = Image.new("L", (32, 32), 100)  # below half: keep
    soft.paste(200, (0, 0, 16, 32))  # above half: paint
    canvas, mask = edit_canvas(EditPlan("inpaint", 1.0), image, soft, 32)
    assert set(mask.histogram()[1:255]) == {0} and mask.getpixel((8, 8)) == 255 and mask.getpixel((24, 8)) == 0
    drawn = Image.new("RGB", (64, 64), (10, 10, 200))  # a cascade delivers at twice the canvas
    result = keep_unmasked(drawn, canvas, mask)
    assert result.size == (64, 64) and result.getpixel((60, 30)) == (0, 128, 0) and result.getpixel((4, 30)) == (10, 10, 200)
    assert changed_share(result, canvas.resize((64, 64))) == pytest.approx(0.5)
