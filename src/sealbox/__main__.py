import sys

from sealbox.cli.main import main

sys.exit(main())
