"""Sleep, stage 2: Dreaming. The model writes its own rehearsal data, learns by trial which dreams help, and the
student rehearses the best ones (`run.run_dreaming`)."""
