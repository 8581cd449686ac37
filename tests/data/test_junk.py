"""Junk that people draw on a digit canvas: every family draws what it claims, measured on the canvas."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from digitguard.data import junk
from digitguard.inference.preprocess import decode_png, to_mnist

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
SEEDS = range(12)


def ink(canvas: np.ndarray) -> np.ndarray:
    return canvas < 128


def components(mask: np.ndarray) -> int:
    return int(ndimage.label(mask, EIGHT_CONNECTED)[1])


def holes(mask: np.ndarray) -> int:
    """Paper regions the ink encloses (paper is 4-connected, so a diagonal gap in the ink is closed)."""
    labels, count = ndimage.label(~mask)
    outside = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return count - int(np.count_nonzero(outside))


def box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """top, bottom, left, right of the ink (inclusive)."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def elongation_and_angle(mask: np.ndarray) -> tuple[float, float]:
    """The ink's length ÷ width (from its second moments) and its long axis's angle from horizontal (°)."""
    ys, xs = np.nonzero(mask)
    values, vectors = np.linalg.eigh(np.cov(np.stack([xs, ys])))
    major = vectors[:, 1]
    return float(np.sqrt(values[1] / max(values[0], 1e-9))), float(
        np.degrees(np.arctan2(abs(major[1]), abs(major[0])))
    )


def ink_runs(row: np.ndarray) -> int:
    return int(np.count_nonzero(np.diff(row.astype(np.int8)) == 1) + row[0])


def column_groups(mask: np.ndarray) -> int:
    """Groups of ink columns with paper columns between them."""
    return ink_runs(mask.any(0))


def draw(name: str, seed: int, digits: np.ndarray | None = None) -> np.ndarray:
    return junk.FAMILIES[name](np.random.default_rng(seed), digits)


@pytest.fixture(scope="module")
def block_digits() -> np.ndarray:
    """A stand-in for MNIST: one 'digit' that is a 12×12 square, so its ink is easy to find."""
    digits = np.zeros((1, 28, 28), dtype=np.uint8)
    digits[0, 8:20, 8:20] = 255
    return digits


class TestEveryFamily:
    @pytest.mark.parametrize("name", list(junk.FAMILIES))
    def test_it_draws_a_280_pixel_uint8_canvas_of_dark_ink_on_white_paper(
        self, name: str, block_digits: np.ndarray
    ) -> None:
        for seed in SEEDS:
            canvas = draw(name, seed, block_digits)
            assert canvas.shape == (280, 280) and canvas.dtype == np.uint8
            assert canvas.max() == 255 and np.median(canvas) == 255
            assert 0 < ink(canvas).mean() < 0.5

    @pytest.mark.parametrize("name", list(junk.FAMILIES))
    def test_the_same_seed_draws_the_same_canvas_and_another_seed_another(
        self, name: str, block_digits: np.ndarray
    ) -> None:
        assert np.array_equal(draw(name, 5, block_digits), draw(name, 5, block_digits))
        assert not np.array_equal(draw(name, 5, block_digits), draw(name, 6, block_digits))

    @pytest.mark.parametrize("name", list(junk.FAMILIES))
    def test_it_lands_anywhere_on_the_canvas_not_only_in_the_centre(
        self, name: str, block_digits: np.ndarray
    ) -> None:
        centres = np.array([np.argwhere(ink(draw(name, seed, block_digits))).mean(0) for seed in SEEDS])
        assert np.ptp(centres[:, 0]) > 40 and np.ptp(centres[:, 1]) > 40

    @pytest.mark.parametrize("name", list(junk.FAMILIES))
    def test_painted_at_half_size_it_becomes_nearly_the_same_mnist_input(
        self, name: str, block_digits: np.ndarray
    ) -> None:
        # Strokes may move by a pixel, so the inputs are compared blurred (σ = 1 px of 28).
        family, differences = junk.FAMILIES[name], []
        for seed in range(6):
            full = family(np.random.default_rng(seed), block_digits)
            half = family(np.random.default_rng(seed), block_digits, side=junk.FAST_SIDE)
            if ink(full).sum() < 60:  # a tap that to_mnist refuses as nothing drawn
                continue
            blurred = [ndimage.gaussian_filter(to_mnist(canvas), 1.0) for canvas in (full, half)]
            differences.append(np.abs(blurred[0] - blurred[1]).mean())
        assert max(differences) < 0.08 and np.mean(differences) < 0.04


class TestWhatEachFamilyDraws:
    def test_a_dot_is_one_small_nearly_round_filled_disc(self) -> None:
        for seed in SEEDS:
            mask = ink(draw("dot", seed))
            top, bottom, left, right = box(mask)
            height, width = bottom - top + 1, right - left + 1
            assert components(mask) == 1 and holes(mask) == 0
            assert max(height, width) <= 70 and max(height, width) / min(height, width) <= 1.5
            assert 0.6 <= mask.sum() / (height * width) <= 0.95  # a disc fills π/4 of its box

    def test_a_tick_is_one_stroke_with_its_vertex_low_on_the_left_and_its_long_arm_up_to_the_right(
        self,
    ) -> None:
        for seed in SEEDS:
            mask = ink(draw("tick", seed))
            top, bottom, left, right = box(mask)
            assert components(mask) == 1 and holes(mask) == 0
            assert np.flatnonzero(mask[bottom]).mean() < left + 0.6 * (right - left)
            assert np.flatnonzero(mask[:, right]).mean() < (top + bottom) / 2

    def test_a_dash_is_one_elongated_stroke_at_least_40_degrees_from_vertical(self) -> None:
        for seed in range(40):
            mask = ink(draw("dash", seed))
            elongation, angle = elongation_and_angle(mask)
            assert components(mask) == 1 and elongation >= 3.0 and angle <= 50.0

    def test_a_scribble_is_one_stroke_that_crosses_itself(self) -> None:
        crossing = [holes(ink(draw("scribble", seed))) >= 1 for seed in range(20)]
        assert all(components(ink(draw("scribble", seed))) == 1 for seed in range(20))
        assert sum(crossing) >= 16

    def test_a_cross_is_two_strokes_that_cross_and_enclose_nothing(self) -> None:
        for seed in SEEDS:
            mask = ink(draw("cross", seed))
            top, bottom, left, right = box(mask)
            assert components(mask) == 1
            assert mask.sum() / ((bottom - top + 1) * (right - left + 1)) < 0.5  # strokes, not a blob

    def test_a_face_is_an_outline_holding_eyes_and_a_mouth(self) -> None:
        for seed in SEEDS:
            mask = ink(draw("face", seed))
            labels, count = ndimage.label(mask, EIGHT_CONNECTED)
            assert count >= 3
            sizes = np.bincount(labels.ravel())[1:]
            outline = labels == 1 + int(sizes.argmax())
            top, bottom, left, right = box(outline)
            inner = np.argwhere(mask & ~outline)
            assert (inner[:, 0] > top).all() and (inner[:, 0] < bottom).all()
            assert (inner[:, 1] > left).all() and (inner[:, 1] < right).all()

    def test_hand_drawn_letters_are_drawn_in_strokes(self) -> None:
        for seed in SEEDS:
            assert 1 <= components(ink(draw("letters-hand", seed))) <= 4

    def test_two_digits_stand_side_by_side_with_a_gap_or_overlap_in_part(self, block_digits) -> None:
        apart = overlapping = 0
        for seed in range(30):
            first, second = junk.FAMILIES["two-digits"].draw(np.random.default_rng(seed), block_digits)
            columns = [np.flatnonzero(ink(junk.paint([mark])).any(0)) for mark in (first, second)]
            canvas = ink(junk.paint([first, second]))
            if columns[1][0] > columns[0][-1]:
                apart += 1
                assert column_groups(canvas) == 2
            else:
                overlapping += 1
                assert columns[0][0] < columns[1][0] < columns[0][-1] < columns[1][-1]
        assert apart >= 15 and overlapping >= 3

    def test_a_crossed_out_digit_has_one_stroke_running_past_it_on_both_sides(self, block_digits) -> None:
        for seed in SEEDS:
            digit, stroke = junk.FAMILIES["crossed-out"].draw(np.random.default_rng(seed), block_digits)
            digit_mask, stroke_mask = ink(junk.paint([digit])), ink(junk.paint([stroke]))
            assert components(digit_mask | stroke_mask) == 1  # the stroke goes through the digit
            assert elongation_and_angle(stroke_mask)[0] > 4
            top, bottom, left, right = box(digit_mask)
            margin = max(bottom - top, right - left) // 8
            around_the_digit = np.zeros_like(stroke_mask)
            around_the_digit[top - margin : bottom + margin + 1, left - margin : right + margin + 1] = True
            assert components(stroke_mask & ~around_the_digit) == 2  # one end on each side

    def test_a_blob_is_one_solid_shape_never_much_taller_than_wide(self) -> None:
        for seed in SEEDS:
            mask = ink(draw("blob", seed))
            top, bottom, left, right = box(mask)
            height, width = bottom - top + 1, right - left + 1
            assert components(mask) == 1 and holes(mask) == 0
            assert mask.sum() / (height * width) > 0.5 and height / width <= 1.4

    def test_a_zigzag_crosses_a_row_at_least_three_times_and_four_as_a_rule(self) -> None:
        most = []
        for seed in range(20):
            mask = ink(draw("zigzag", seed))
            top, bottom, _, _ = box(mask)
            most.append(max(ink_runs(row) for row in mask[top : bottom + 1]))
            assert components(mask) == 1
        assert min(most) >= 3 and np.median(most) >= 4

    def test_a_spiral_has_at_least_two_turns_so_a_line_through_it_cuts_four_strokes(self) -> None:
        for seed in SEEDS:
            mask = ink(draw("spiral", seed))
            top, bottom, _, _ = box(mask)
            middle, margin = (top + bottom) // 2, (bottom - top) // 8
            assert components(mask) == 1
            assert max(ink_runs(row) for row in mask[middle - margin : middle + margin + 1]) >= 4

    @pytest.mark.parametrize("name", ["star", "hash", "heart"])
    def test_closed_shapes_enclose_paper(self, name: str) -> None:
        for seed in SEEDS:
            mask = ink(draw(name, seed))
            assert components(mask) == 1 and holes(mask) >= 1

    def test_an_arrow_is_one_long_shape(self) -> None:
        for seed in SEEDS:
            mask = ink(draw("arrow", seed))
            assert components(mask) == 1 and elongation_and_angle(mask)[0] >= 2.5

    def test_hatching_is_parallel_strokes_apart_or_a_grid_of_them(self) -> None:
        for seed in range(20):
            mask = ink(draw("hatching", seed))
            assert components(mask) >= 3 or holes(mask) >= 2

    def test_noise_is_many_separate_little_marks(self) -> None:
        for seed in SEEDS:
            assert components(ink(draw("noise", seed))) >= 5


class TestGlyphs:
    def test_no_glyph_that_passes_for_a_digit_is_drawn(self) -> None:
        drawn = set(junk.GLYPHS) | set(junk.HAND_GLYPHS)
        assert not drawn & set(junk.EXCLUDED_GLYPHS)
        assert not drawn & set("0123456789")

    def test_the_usual_look_alikes_are_on_the_excluded_list(self) -> None:
        assert set("OoQDlIi|ZzSsbGgqBA") <= set(junk.EXCLUDED_GLYPHS)

    @pytest.mark.parametrize("source", junk.font_sources())
    def test_every_font_draws_ink_for_every_glyph_and_no_missing_glyph_box(self, source: str) -> None:
        font = (
            ImageFont.load_default(size=48) if source == junk.DEFAULT_FONT else ImageFont.truetype(source, 48)
        )
        missing = rendered(font, "\ue000")  # a private-use code point: the font's missing-glyph box
        assert set(junk.LATIN_GLYPHS) <= set(junk.glyphs_for(source))
        for glyph in junk.glyphs_for(source):
            pixels = rendered(font, glyph)
            assert pixels.any(), f"{glyph!r} draws no ink in {Path(source).name}"
            assert not np.array_equal(pixels, missing), f"{glyph!r} is missing from {Path(source).name}"

    def test_pillows_own_font_is_always_a_source(self) -> None:
        assert junk.font_sources()[0] == junk.DEFAULT_FONT

    @pytest.mark.parametrize("glyph", list(junk.HAND_GLYPHS))
    def test_every_hand_skeleton_fills_its_unit_box(self, glyph: str) -> None:
        points = np.concatenate(junk.HAND_GLYPHS[glyph].strokes)
        assert points.min() >= -0.05 and points.max() <= 1.05
        assert np.ptp(points, axis=0).max() >= 0.9


def rendered(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str) -> np.ndarray:
    image = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(image).text((8, 8), text, fill=255, font=font)
    return np.asarray(image) > 0


class TestSplit:
    def test_training_and_held_out_families_are_disjoint_and_cover_the_registry(self) -> None:
        assert not set(junk.TRAINING_FAMILIES) & set(junk.HELD_OUT_FAMILIES)
        assert set(junk.TRAINING_FAMILIES) | set(junk.HELD_OUT_FAMILIES) == set(junk.FAMILIES)

    def test_the_registry_names_each_family_by_its_own_name(self) -> None:
        assert all(family.name == name for name, family in junk.FAMILIES.items())


class TestJunkCanvases:
    def test_the_same_seed_gives_the_same_canvases_and_another_seed_others(self, block_digits) -> None:
        first = junk.junk_canvases(12, 3, digits_u8=block_digits)
        again = junk.junk_canvases(12, 3, digits_u8=block_digits)
        other = junk.junk_canvases(12, 4, digits_u8=block_digits)
        assert all(np.array_equal(a.canvas, b.canvas) for a, b in zip(first, again, strict=True))
        assert not any(np.array_equal(a.canvas, b.canvas) for a, b in zip(first, other, strict=True))

    def test_the_families_are_taken_in_turn_so_each_is_drawn_evenly(self, block_digits) -> None:
        samples = junk.junk_canvases(3 * len(junk.TRAINING_FAMILIES), 0, digits_u8=block_digits)
        counts = {name: sum(s.family == name for s in samples) for name in junk.TRAINING_FAMILIES}
        assert set(counts.values()) == {3}

    def test_a_smaller_call_gives_the_first_canvases_of_a_larger_one(self) -> None:
        small, large = junk.junk_canvases(4, 9), junk.junk_canvases(9, 9)
        assert all(np.array_equal(a.canvas, b.canvas) for a, b in zip(small, large[:4], strict=True))

    def test_without_digits_the_families_that_need_them_are_skipped(self) -> None:
        names = {sample.family for sample in junk.junk_canvases(40, 0)}
        assert names == set(junk.TRAINING_FAMILIES) - {"two-digits", "crossed-out"}

    def test_a_family_that_needs_digits_refuses_to_draw_without_them(self) -> None:
        with pytest.raises(junk.JunkError, match="digits_u8 must not be None"):
            junk.FAMILIES["two-digits"](np.random.default_rng(0), None)
        with pytest.raises(junk.JunkError, match="needs digits_u8"):
            junk.junk_canvases(3, 0, families=["two-digits"])

    def test_digits_of_the_wrong_shape_or_type_are_refused(self) -> None:
        with pytest.raises(junk.JunkError, match=r"\(k>0, 28, 28\) uint8"):
            junk.junk_canvases(3, 0, families=["crossed-out"], digits_u8=np.zeros((2, 28, 28), np.float32))

    def test_an_unknown_family_is_refused_and_the_known_ones_named(self) -> None:
        with pytest.raises(junk.JunkError, match=r"unknown junk families.*known: dot"):
            junk.junk_canvases(3, 0, families=["dot", "ring"])

    def test_a_negative_count_is_refused(self) -> None:
        with pytest.raises(junk.JunkError, match="must not be negative"):
            junk.junk_canvases(-1, 0)

    def test_held_out_families_are_drawn_only_when_asked_for(self) -> None:
        assert not {s.family for s in junk.junk_canvases(30, 0)} & set(junk.HELD_OUT_FAMILIES)
        assert {s.family for s in junk.junk_canvases(5, 0, junk.HELD_OUT_FAMILIES)} == set(
            junk.HELD_OUT_FAMILIES
        )


class TestJunkInputs:
    def test_it_gives_mnist_inputs_and_the_family_of_each(self, block_digits) -> None:
        inputs = junk.junk_inputs(40, 1, digits_u8=block_digits)
        assert inputs.images.shape == (len(inputs.families), 28, 28) and inputs.images.dtype == np.float32
        assert inputs.images.min() >= 0.0 and inputs.images.max() <= 1.0
        assert len(inputs.families) + inputs.nothing_drawn == 40
        assert (inputs.images.reshape(len(inputs.images), -1).max(1) > 0.5).all()

    def test_taps_too_small_to_be_drawing_are_counted_as_nothing_drawn(self) -> None:
        inputs = junk.junk_inputs(60, 0, families=["dot"])
        assert inputs.nothing_drawn > 0 and len(inputs.images) + inputs.nothing_drawn == 60

    def test_an_input_is_the_mnist_form_of_the_canvas_the_same_seed_draws(self) -> None:
        canvases = junk.junk_canvases(6, 2, families=["star", "arrow"], side=junk.FAST_SIDE)
        inputs = junk.junk_inputs(6, 2, families=["star", "arrow"])
        assert np.array_equal(inputs.images, np.stack([to_mnist(c.canvas) for c in canvases]))

    def test_nothing_at_all_gives_an_empty_stack_of_the_right_shape(self) -> None:
        assert junk.junk_inputs(0, 0).images.shape == (0, 28, 28)


class TestCanvasPng:
    def test_the_png_decodes_to_the_canvas(self) -> None:
        canvas = draw("star", 0)
        assert np.array_equal(decode_png(junk.canvas_png(canvas)), canvas)

    def test_a_transparent_png_decodes_to_the_same_grey_levels(self) -> None:
        canvas = draw("heart", 0)
        png = junk.canvas_png(canvas, transparent=True)
        assert Image.open(io.BytesIO(png)).mode == "RGBA"
        assert np.abs(decode_png(png).astype(int) - canvas).max() <= 1

    def test_anything_but_a_2d_uint8_canvas_is_refused(self) -> None:
        with pytest.raises(junk.JunkError, match="2-D uint8"):
            junk.canvas_png(np.zeros((28, 28, 3), np.uint8))
