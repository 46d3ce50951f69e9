import sys

from tools.datapipeline.cli import main

sys.exit(main())
