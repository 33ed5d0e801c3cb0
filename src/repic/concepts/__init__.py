"""Personal concepts: the concept database (RAP / RePIC ``database.json``) and what is built on it.

Only the database is re-exported here; retrieval modules are imported from their own files so that
reading a database never pulls in a vision model.
"""

from .database import PROBLEM_KINDS, ConceptDatabase, Problem, image_problem, load_database

__all__ = ["PROBLEM_KINDS", "ConceptDatabase", "Problem", "image_problem", "load_database"]
