package route

import "github.com/svcpath/kubectl-svcpath/pkg/internal/iprjson"

// object is one JSON object of iproute2's output (pkg/internal/iprjson).
type object = iprjson.Object

func decodeArray(data []byte) ([]object, error) { return iprjson.DecodeArray(data) }

func parseInt(s string) (int64, bool) { return iprjson.ParseInt(s) }
