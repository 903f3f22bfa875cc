"""ROS 2 nodes around flowfeat_core: perception, recorder, video publisher."""
