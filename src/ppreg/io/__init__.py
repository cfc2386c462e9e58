"""Reading and writing images, transforms, points and reports."""
