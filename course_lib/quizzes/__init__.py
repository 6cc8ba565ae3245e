"""The "Check your understanding" question banks: ``lessonNN.py`` defines ``QUESTIONS`` (see :mod:`course_lib.quiz`)."""
