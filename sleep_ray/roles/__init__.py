"""The roles a night starts as Ray actors (teacher-self, student-large, the Learning-to-Imitate critic) and the
Ray Train loop both stages train the student with."""
