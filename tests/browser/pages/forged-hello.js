// A frame of an origin that is not the vault's, in the merchant's page: it sends the loader a
// handshake with the nonce and field of a real frame (read from the page, as any script there can)
// and reports to its server whether the loader answered on its port.
const q = new URLSearchParams(location.search);
const { port1, port2 } = new MessageChannel();
port1.onmessage = (e) => fetch(`/forged-answered?type=${encodeURIComponent(e.data?.type ?? '')}`);
parent.postMessage({ type: 'fieldseal:hello', v: 1, id: q.get('id'), field: q.get('field') }, '*', [port2]);
