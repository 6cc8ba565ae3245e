"""Generated answer keys, one module per lesson (``lessonNN``): see ``course_lib.exercises``."""
