"""BVH output: crash-safe file writer, live TCP stream, and a small reader.

- :class:`trackside.bvh.writer.BvhWriter`, :func:`trackside.bvh.writer.write_bvh`,
  :func:`trackside.bvh.writer.bvh_header`
- :class:`trackside.bvh.stream.BvhStreamServer` (one frame per line over TCP on localhost)
- :func:`trackside.bvh.parser.read_bvh`
"""

from trackside.bvh.writer import BvhWriter, bvh_frames, bvh_header, write_bvh  # noqa: F401
