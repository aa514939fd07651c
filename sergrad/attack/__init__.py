"""sergrad.attack"""
