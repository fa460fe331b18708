"""robochem.optimizer"""
