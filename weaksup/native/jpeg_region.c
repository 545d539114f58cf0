/* Decodes one rectangle of a JPEG with libjpeg-turbo, without decoding the rest.
 *
 * The region's columns go through jpeg_crop_scanline (inverse DCT and colour conversion
 * only for the iMCU columns that hold them), rows above it through jpeg_skip_scanlines
 * (entropy-decoded, not reconstructed), and decoding stops at its last row: the
 * decode_and_crop_jpeg of TensorFlow, for a random-resized crop that keeps on average
 * about half of the picture.  Built by `python -m weaksup jpeg build`; called
 * through ctypes, which releases the GIL for the call.
 */
#include <setjmp.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <jpeglib.h>

#define MSG_LEN 200

struct error_mgr {
  struct jpeg_error_mgr pub;
  jmp_buf jump;
  char message[MSG_LEN];
};

static void on_error(j_common_ptr cinfo) {
  struct error_mgr *err = (struct error_mgr *)cinfo->err;
  (*cinfo->err->format_message)(cinfo, err->message);
  longjmp(err->jump, 1);
}

/* Warnings (corrupt data, premature end of file) are errors here: the caller then decodes
 * the whole file with its usual decoder, which reports or tolerates them as it always does. */
static void on_message(j_common_ptr cinfo, int level) {
  if (level < 0) on_error(cinfo);
}

/* Decodes rows [top, top + height) and at least columns [left, left + width) of the picture
 * at scale num/8 into `out` (RGB, rows of `stride` bytes, capacity `capacity` bytes).
 * Column cropping snaps to iMCU boundaries: on return info[0] is the first decoded column
 * and info[1] the number of decoded columns, a superset of the ones asked for.
 * Returns 0, or -1 with a message. */
int weaksup_jpeg_decode_region(const uint8_t *data, unsigned long size, int num,
                               int left, int top, int width, int height,
                               uint8_t *out, unsigned long stride, unsigned long capacity,
                               int *info, char *message) {
  struct jpeg_decompress_struct cinfo;
  struct error_mgr err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = on_error;
  err.pub.emit_message = on_message;
  if (setjmp(err.jump)) {
    strncpy(message, err.message, MSG_LEN);
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, size);
  jpeg_read_header(&cinfo, TRUE);
  cinfo.scale_num = num;
  cinfo.scale_denom = 8;
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress(&cinfo);
  if (cinfo.output_components != 3 || left < 0 || top < 0 || width <= 0 || height <= 0 ||
      (unsigned)(left + width) > cinfo.output_width || (unsigned)(top + height) > cinfo.output_height) {
    snprintf(message, MSG_LEN, "region %dx%d+%d+%d outside the %ux%u picture (or not RGB)",
             width, height, left, top, cinfo.output_width, cinfo.output_height);
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  JDIMENSION xoffset = left, cwidth = width;
  if (cwidth < cinfo.output_width) jpeg_crop_scanline(&cinfo, &xoffset, &cwidth);
  if ((unsigned long)cwidth * 3 > stride || (unsigned long)height * stride > capacity) {
    snprintf(message, MSG_LEN, "decoded width %u does not fit the row stride %lu", cwidth, stride);
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  if (top > 0 && jpeg_skip_scanlines(&cinfo, top) != (JDIMENSION)top) {
    snprintf(message, MSG_LEN, "could not skip %d rows", top);
    jpeg_destroy_decompress(&cinfo);
    return -1;
  }
  for (int row = 0; row < height;) {
    JSAMPROW rows[1] = {out + (unsigned long)row * stride};
    JDIMENSION got = jpeg_read_scanlines(&cinfo, rows, 1);
    if (got == 0) {
      snprintf(message, MSG_LEN, "stopped at row %d of %d", top + row, top + height);
      jpeg_destroy_decompress(&cinfo);
      return -1;
    }
    row += got;
  }
  info[0] = xoffset;
  info[1] = cwidth;
  /* The rows below the region are never decoded. */
  jpeg_abort_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return 0;
}
