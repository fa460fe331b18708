"""robochem.simulator"""
