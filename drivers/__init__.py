"""robochem.drivers"""
