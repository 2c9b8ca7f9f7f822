package nft
import ("testing";"os")
func TestZZ(t *testing.T){ b,_:=os.ReadFile("testdata/v134-nft-list-table.txt"); rs,err:=Parse(b); if err!=nil{t.Fatal(err)}
 tr,err:=Translate(rs.Table("ip","kube-proxy"),nil); if err!=nil{t.Fatal(err)}; t.Log(string(tr.Text)); t.Log(tr.Unmodelled)}
