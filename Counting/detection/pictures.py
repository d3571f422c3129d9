"""The pictures of a detection, shared by every method: one mask and one importance picture per
group, and the input with the predicted boxes (red) and the annotated ones (green)."""
import os

import numpy
from PIL import Image, ImageDraw

from Counting import gradients, images


def mask_picture(mask):
    return numpy.where(mask, 255, 0).astype(numpy.uint8)


def boxes_picture(image, boxes, truth_boxes=()):
    """The input image (uint8 HWC), predicted boxes in red (2 px), annotated ones in green."""
    canvas = Image.fromarray(images.image_to_rgb(image))
    draw = ImageDraw.Draw(canvas)
    for box in truth_boxes:
        draw.rectangle([int(v) for v in box], outline=(0, 255, 0), width=1)
    for box in boxes:
        draw.rectangle([int(v) for v in box], outline=(255, 0, 0), width=2)
    return numpy.asarray(canvas)


def write_pictures(out, name, image, detections, truth_boxes=()):
    """Write one mask and one importance picture per group and the boxes picture of one image."""
    base = os.path.join(out, images.stem(name))
    for k, group in enumerate(detections):
        images.save_png('{}_group{}_mask.png'.format(base, k), mask_picture(group.mask))
        images.save_png('{}_group{}_importance.png'.format(base, k),
                              gradients.saliency_picture(group.importance))
    images.save_png(base + '_boxes.png',
                          boxes_picture(image, detections.boxes, truth_boxes))
