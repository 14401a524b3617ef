"""Where frames come from: image files now; video files, cameras and WebRTC later."""
