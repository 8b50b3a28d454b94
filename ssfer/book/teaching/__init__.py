"""The course labs: their student and solution versions, their grading, and the
simulated teacher the threshold exercises run on."""
