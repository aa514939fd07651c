"""sergrad.features"""
