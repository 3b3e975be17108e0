"""runtime_helpers"""
