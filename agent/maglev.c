/* placeholder: maglev */
