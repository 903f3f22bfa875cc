"""Training data: rosbag2 bags, videos and image folders as cached frame sequences and pairs;
decoding of ROS image messages."""
