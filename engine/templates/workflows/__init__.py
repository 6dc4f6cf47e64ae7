"""Definitions (workflow file format) of the workflows the package's templates name.

``ProjectManager.execute_project_workflow`` records one of these the first time a
project runs a workflow of that name that is not defined yet; a definition of the same
name in the workflows directory or made with ``create_workflow`` always wins.
"""
