// Card brands as shoppers read them (shared by the checkout page and the receipt the server renders).
const BRANDS = {
  visa: 'Visa', mastercard: 'Mastercard', amex: 'American Express', discover: 'Discover', diners: 'Diners Club',
  jcb: 'JCB', unionpay: 'UnionPay', maestro: 'Maestro',
  rupay: 'RuPay', mir: 'Mir', elo: 'Elo', verve: 'Verve', troy: 'Troy',
};

/** `amex` -> `American Express`; an unknown brand as it is; none -> `Card`. */
export const brandName = (brand) => BRANDS[brand] ?? brand ?? 'Card';
