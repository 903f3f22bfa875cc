"""The video_publisher node (node.py): a video, image folder or rosbag2 played as a camera."""
