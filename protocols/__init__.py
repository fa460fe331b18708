"""robochem.protocols"""
