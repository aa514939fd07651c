"""sergrad.fl"""
