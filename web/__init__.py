"""robochem.web"""
