"""Pictures at a readable size: small images scaled up by whole pixels, whole captions, the true
class under a wrong prediction, labelled rows."""

import torch
from PIL import ImageFont

from dlpy.plots import grid, labelled_grid, labelled_rows


def images(n, size=28):
    return torch.randint(0, 255, (n, 1, size, size), dtype=torch.uint8)


def test_a_grid_of_28_pixel_images_draws_each_pixel_as_a_3x3_square():
    x = images(8)
    picture = grid(x, columns=8)
    assert picture.shape == (3, 84 + 4, 8 * 86 + 2)
    cell = picture[0, 2:86, 2:86]
    assert torch.equal(cell[::3, ::3], x[0, 0])
    assert torch.equal(cell[1::3, 2::3], x[0, 0])  # nearest: no blur between the pixels
    assert grid(images(2, size=96)).shape[1] == 96 + 4  # a large image stays as it is


def test_captions_are_whole_and_a_wrong_one_names_the_true_class():
    font = ImageFont.load_default()
    name = "T-shirt/top, a long class name"
    picture = labelled_grid(images(2), [name, "Bag"], [False, True], 2, truths=["Bag", "Bag"])
    width = picture.shape[2] // 2
    assert width >= font.getlength("true: Bag") and width >= font.getlength(name)
    under = picture[:, 84:, :]  # the two caption lines under the images
    first = under[:, :, :width]
    second = under[:, :, width:]
    # the text is anti-aliased: reddish pixels, and dark grey ones (RED and GREY at their core)
    reddish = (first[0].int() - first[1].int() > 60)[:12]
    greyish = ((first[0] == first[1]) & (first[0] < 160))[12:]
    assert reddish.any()  # the wrong prediction, in red
    assert greyish.any()  # and the true class under it
    assert (second[:, 12:] == 255).all()  # a right one has no second line


def test_rows_carry_their_names_on_the_left():
    font = ImageFont.load_default()
    x = images(20)
    picture = labelled_rows([("original", x), ("reconstruction", x)], columns=16)
    assert picture.shape[1] == 4 * 86 + 2  # 2 bands of an original and a reconstruction row
    margin = picture.shape[2] - 16 * 86 - 2
    assert margin >= font.getlength("reconstruction")
    top, bottom = picture[:, 2:86, :margin], picture[:, 88:172, :margin]
    assert (top < 255).any() and (bottom < 255).any()
    narrow = labelled_rows([("original", x[:3]), ("reconstruction", x[:3])], columns=16)
    assert narrow.shape[2] == margin + 3 * 86 + 2  # 3 images: a row of 3, no white beyond
