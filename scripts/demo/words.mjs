/**
 * The vocabulary of the demo's synthetic world: plain lowercase English words (letters only,
 * 3-8 characters) by part of speech, plus names, from which the pretraining corpus (corpus.mjs)
 * builds its sentences. Fixed lists, so the generated text depends only on the seed.
 * Not here: sentence templates or randomness (corpus.mjs, rng.mjs).
 */

export const NOUNS = `
cat dog bird fish cow pig horse sheep goat duck frog bear wolf fox lion tiger mouse rat owl bee ant
crab seal whale shark snake tree leaf rock sand lake river hill road door wall roof bed desk lamp cup
bowl plate spoon fork knife book pen box bag hat shoe sock coat shirt ring key coin map ship boat car
bus train bike kite ball doll drum bell cake bread milk egg apple pear plum lemon grape melon rice corn
bean soup tea salt honey sugar cloud rain snow wind star moon sun sky fire ice stone gold iron wood
glass paper rope nest farm town city park shop school house room garden field forest island bridge
tower castle window chair table clock phone radio piano guitar violin flute candle basket bottle
bucket hammer ladder pillow blanket mirror button pocket wallet ticket letter parcel jacket carpet
kettle teapot cookie muffin pepper carrot potato tomato onion cherry banana orange peach mango
garlic butter cheese yogurt noodle pizza pencil eraser crayon marker folder stamp poster camera
wagon rocket planet comet valley canyon desert meadow pond stream beach harbor market village
palace cabin tent barn fence gate path street corner tunnel engine wheel anchor sail flag drum
helmet glove boot scarf belt purse pebble shell feather
`;

export const ADJECTIVES = `
red blue green yellow black white brown pink gray purple big small tall short long old new young hot
cold warm soft hard fast slow happy sad quiet loud bright dark clean dirty heavy light round flat sharp
smooth rough sweet sour fresh dry wet empty full thick thin rich poor kind brave calm busy lazy proud
shy wild tame tiny huge gentle funny silly clever strange simple golden silver wooden plain shiny
narrow wide deep early late noisy sleepy hungry thirsty lucky dusty sandy rocky sunny rainy windy
snowy cozy fancy lovely
`;

export const VERBS = `
run jump swim fly sing read write eat drink sleep walk play draw cook climb dance sit stand push pull
open close carry throw catch kick paint wash fix build dig ride sail bake wave smile laugh shout
listen watch look find hide bring keep
`;

export const NAMES = `
Anna Ben Cara Dan Eva Finn Gina Hugo Ida Jack Kim Leo Mia Ned Olga Pia Rosa Sam Tom Uma Vic Will
Yuri Zoe
`;

/** Words of a list (split on whitespace, duplicates dropped, order kept). */
export function words(list) {
  return [...new Set(list.trim().split(/\s+/))];
}
