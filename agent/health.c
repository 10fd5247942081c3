/* placeholder: health */
