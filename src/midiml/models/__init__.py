"""Learners: next-event generators and classifiers, their losses and data modules."""
