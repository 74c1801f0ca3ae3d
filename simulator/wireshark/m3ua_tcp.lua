-- M3UA over TCP for Wireshark and tshark: tshark -X lua_script:simulator/wireshark/m3ua_tcp.lua
-- Wireshark's M3UA dissector is written for SCTP (one message per chunk) and ignores the
-- length in the common header; on a TCP stream one segment may hold several messages (an
-- ASPUP-ACK and its NTFY, answers written together). This frames the stream by that length
-- and hands each message to the M3UA dissector. Change the port to the agent's M3UA port.
local port = 2905
local m3ua = Dissector.get("m3ua")
local framing = Proto("m3ua_tcp", "M3UA over TCP")
local function pdu_length(tvb, pinfo, offset) return tvb(offset + 4, 4):uint() end
local function dissect_pdu(tvb, pinfo, tree) return m3ua:call(tvb, pinfo, tree) end
function framing.dissector(tvb, pinfo, tree) return dissect_tcp_pdus(tvb, tree, 8, pdu_length, dissect_pdu) end
DissectorTable.get("tcp.port"):add(port, framing)
